"""The training command as a person runs it: --help, missing data, a dry run, determinism."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image

from training.export import load_scripted, weights_sha256
from training.report import FILES
from training.train import build_parser, main

BIN = Path(sys.executable).parent


def run_command(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def torch_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A run sets torch's thread count and deterministic mode; give them back afterwards."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # restored by monkeypatch
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def test_help_documents_every_flag_with_its_default() -> None:
    script = BIN / "ae-train"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "training"]

    done = run_command(*command, "--help")

    assert done.returncode == 0, done.stderr
    flags = [o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")]
    assert len(flags) > 20
    for flag in flags:
        assert flag in done.stdout
    assert "default: from the recipe: seed 20, onecycle" in " ".join(done.stdout.split())
    assert "(default: 4096)" in done.stdout


def test_missing_data_says_what_to_put_where_and_exits_2(tmp_path: Path) -> None:
    done = run_command(
        sys.executable, "-m", "training", "--dataset", "mnist", "--data-dir", str(tmp_path)
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{tmp_path}/MNIST/raw" in done.stderr
    assert "train-images-idx3-ubyte" in done.stderr
    assert "--download" in done.stderr
    assert not (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()


def dry_run(out: Path, *extra: str) -> dict:
    code = main(["--dry-run", "--no-progress", "--out", str(out), *extra])
    assert code == 0
    return json.loads((out / "metrics.json").read_text())


def test_dry_run_writes_the_report_and_a_loadable_model(
    tmp_path: Path, torch_globals: None
) -> None:
    model_path = tmp_path / "model.pt"

    report = dry_run(tmp_path / "run", "--export", str(model_path))

    for name in FILES:
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    for name in ("loss.png", "reconstructions.png", "interpolation.png"):
        with Image.open(tmp_path / "run" / name) as image:
            assert image.format == "PNG" and min(image.size) > 50
    assert report["dataset"]["train_size"] + report["dataset"]["val_size"] <= 400
    assert len(report["metrics"]["val_mse_per_epoch"]) == report["training"]["epochs"]
    module, metadata = load_scripted(model_path)
    with torch.inference_mode():
        assert module(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    assert metadata["metrics"] == report["metrics"]
    assert metadata["weights_sha256"] == weights_sha256(module)
    assert metadata["version"] == f"1.0.0+{metadata['weights_sha256'][:8]}"


def test_same_seed_same_metrics(tmp_path: Path, torch_globals: None) -> None:
    first = dry_run(tmp_path / "a", "--seed", "7")["metrics"]
    again = dry_run(tmp_path / "b", "--seed", "7")["metrics"]
    other = dry_run(tmp_path / "c", "--seed", "8")["metrics"]

    for key in ("train_loss_per_epoch", "val_mse_per_epoch"):
        assert first[key] == pytest.approx(again[key], abs=1e-6)
    assert first["final_val_mse"] != pytest.approx(other["final_val_mse"], abs=1e-6)
