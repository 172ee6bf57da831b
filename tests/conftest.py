"""Shared fixtures: one real service for the end-to-end tests, held-out digits, PNG makers."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support import MODEL_PATH, Service, start_service


def png_bytes(pixels: np.ndarray, mode: str | None = None) -> bytes:
    """(H, W) uint8 or float in [0, 1] -> PNG bytes written by Pillow."""
    if pixels.dtype != np.uint8:
        pixels = np.rint(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    if mode:
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def read_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("L"))


@pytest.fixture(scope="session")
def model_metadata() -> dict[str, Any]:
    import zipfile

    with zipfile.ZipFile(MODEL_PATH) as archive:
        name = next(n for n in archive.namelist() if n.endswith("extra/metadata.json"))
        return dict(json.loads(archive.read(name)))


@pytest.fixture(scope="session")
def heldout(model_metadata: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The committed model's held-out digits: (N, 28, 28) uint8 and their labels (N,)."""
    from training.data import load_digits, split_digits

    ds = model_metadata["dataset"]
    pool = load_digits(ds["name"])
    _, val = split_digits(pool, ds["train_size"], ds["val_size"], ds["split_seed"])
    images = np.rint(val.images[:, 0].numpy() * 255).astype(np.uint8)
    return images, val.labels.numpy()


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One `python -m service` on the committed model for the whole session."""
    with start_service(tmp_path_factory.mktemp("api")) as service:
        yield service


@pytest.fixture()
def http(api: Service) -> Iterator[httpx.Client]:
    with api.client() as client:
        yield client
