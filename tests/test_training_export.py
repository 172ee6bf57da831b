"""The exported TorchScript file: shapes, metadata, atomic writes, and the committed model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from training import export as export_module
from training.data import load_digits, split_digits
from training.export import build_metadata, export, weights_sha256
from training.model import Autoencoder

COMMITTED = Path(__file__).resolve().parent.parent / "models" / "mnist-ae.pt"
TOP_KEYS = {
    "format_version", "name", "version", "input_shape", "embedding_dim", "value_range",
    "architecture", "dataset", "recipe", "metrics", "training", "torch_version", "created",
    "weights_sha256",
}  # fmt: skip
NESTED_KEYS = {
    "dataset": {"name", "train_size", "val_size", "split_seed"},
    "metrics": {"train_loss_per_epoch", "val_mse_per_epoch", "final_val_mse"},
    "training": {"seconds", "device", "seed", "epochs"},
}


def jit_load(path: Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load the way any consumer does: plain torch.jit.load, no `training` code involved."""
    extra = {"metadata.json": ""}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(TorchScript|torch\.jit).*")
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra["metadata.json"])


def small_metadata(model: Autoencoder) -> dict[str, Any]:
    return build_metadata(
        model,
        name="mnist-ae",
        version="0.0.0+test",
        dataset={"name": "mnist-5k", "train_size": 8, "val_size": 4, "split_seed": 0},
        recipe={"name": "seed", "epochs": 1},
        metrics={"train_loss_per_epoch": [0.1], "val_mse_per_epoch": [0.2], "final_val_mse": 0.2},
        training={"seconds": 0.1, "device": "cpu", "seed": 0, "epochs": 1},
    )


def assert_contract(module: torch.jit.ScriptModule, metadata: dict[str, Any]) -> None:
    x = torch.rand(3, 1, 28, 28)  # (3, 1, 28, 28)
    with torch.inference_mode():
        z = module.encode(x)  # (3, 64)
        y = module.decode(z)  # (3, 1, 28, 28)
        assert z.shape == (3, 64)
        assert y.shape == (3, 1, 28, 28)
        assert 0.0 <= y.min() and y.max() <= 1.0
        assert torch.allclose(module(x), y)
    assert TOP_KEYS <= metadata.keys()
    for key, keys in NESTED_KEYS.items():
        assert keys <= metadata[key].keys(), key
    assert metadata["format_version"] == 1
    assert metadata["input_shape"] == [1, 28, 28]
    assert metadata["embedding_dim"] == 64
    assert metadata["value_range"] == [0, 1]
    assert metadata["weights_sha256"] == weights_sha256(module)


def test_export_round_trip_gives_the_contract(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Autoencoder()
    path = export(model, tmp_path / "models" / "ae.pt", small_metadata(model))

    module, metadata = jit_load(path)

    assert_contract(module, metadata)
    assert metadata["name"] == "mnist-ae"
    assert metadata["version"] == "0.0.0+test"
    assert list(tmp_path.joinpath("models").iterdir()) == [path]  # no temporary file left


def test_failed_export_keeps_the_previous_file(tmp_path: Path, monkeypatch: Any) -> None:
    model = Autoencoder()
    path = export(model, tmp_path / "ae.pt", small_metadata(model))
    before = path.read_bytes()

    def differs(*_: object) -> float:
        raise ValueError("exported model differs from eager")

    monkeypatch.setattr(export_module, "check_round_trip", differs)
    with pytest.raises(ValueError, match="differs"):
        export(Autoencoder(), path, small_metadata(model))

    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_committed_model_loads_without_training_and_meets_its_target() -> None:
    module, metadata = jit_load(COMMITTED)

    assert_contract(module, metadata)
    assert metadata["name"] == "mnist-ae"
    assert metadata["metrics"]["final_val_mse"] <= 0.0040
    assert metadata["dataset"]["name"] == "mnist-5k"


def test_committed_model_metric_matches_its_held_out_digits() -> None:
    module, metadata = jit_load(COMMITTED)
    dataset = metadata["dataset"]
    digits = load_digits(dataset["name"])
    _, val = split_digits(digits, dataset["train_size"], None, dataset["split_seed"])

    with torch.inference_mode():
        mse = torch.mean((module(val.images) - val.images) ** 2).item()  # over (904, 1, 28, 28)

    assert len(val) == dataset["val_size"]
    assert mse == pytest.approx(metadata["metrics"]["final_val_mse"], abs=1e-5)
