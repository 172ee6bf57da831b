"""The scripted serving methods against the plain model and numpy: the same pixels, the same
embeddings, whichever CPU kernels a batch size picks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from service import serving
from service.runtime import ONEDNN_FROM_BATCH, Engine, load_model
from service.settings import DEFAULT_MODEL_PATH


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_model(DEFAULT_MODEL_PATH, torch.device("cpu")))


def numpy_pixels(y: np.ndarray) -> np.ndarray:
    """The rounding the service had in numpy before it was scripted: the reference."""
    return np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)


def test_rounding_to_pixels_matches_numpy() -> None:
    # Every value that lands exactly half-way between two levels, and the clamped ends.
    halves = (np.arange(256, dtype=np.float32) + 0.5) / 255
    edges = np.array([-1.0, -0.0, 0.0, 1.0, 1.5, 1e-9, 1 - 1e-7], np.float32)
    y = np.concatenate([halves, edges, np.random.default_rng(0).random(4096, np.float32)])
    scripted = serving._to_uint8(torch.from_numpy(y)).numpy()
    np.testing.assert_array_equal(scripted, numpy_pixels(y))


def test_serving_matches_the_plain_model(engine: Engine) -> None:
    model = engine.model
    x = torch.rand(8, 28, 28)  # (8, 28, 28)
    with torch.inference_mode():
        z = model.module.encode(x[:, None])  # (8, D)
        y = model.module.decode(z)[:, 0]  # (8, 28, 28)
        pixels, mse = model.serving(x)
        embeddings = model.serving.encode(x)
    np.testing.assert_allclose(embeddings.numpy(), z.numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(pixels.numpy().astype(int) - numpy_pixels(y.numpy())).max() <= 1
    want = (y - x).square().mean(dim=(1, 2)).numpy()
    np.testing.assert_allclose(mse.numpy(), want, rtol=1e-4)


def test_a_digit_alone_and_in_a_large_batch_agree(engine: Engine) -> None:
    """A lone digit runs on ATen's kernels, a batch of 16 or more on oneDNN's."""
    digits = np.random.default_rng(1).random((ONEDNN_FROM_BATCH, 28, 28), np.float32)
    ((alone,), version) = engine.run("encode", digits[:1])
    ((batched,), _) = engine.run("encode", digits)
    assert version == engine.model.version
    np.testing.assert_allclose(alone[0], batched[0], rtol=1e-4, atol=1e-5)
    (pixels_alone, mse_alone), _ = engine.run("reconstruct", digits[:1])
    (pixels_batched, mse_batched), _ = engine.run("reconstruct", digits)
    assert np.abs(pixels_alone[0].astype(int) - pixels_batched[0].astype(int)).max() <= 1
    np.testing.assert_allclose(mse_alone[0], mse_batched[0], rtol=1e-4)
