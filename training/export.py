"""Export a trained autoencoder as one self-describing TorchScript file.

The file is the only contract with the service: `encode`, `decode` and `forward` as exported
methods, and a `metadata.json` extra file that says what the model is and how it was made.
Export writes atomically and loads the file back to check it reproduces the eager model.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from training.model import Autoencoder

FORMAT_VERSION = 1
METADATA_FILE = "metadata.json"
MAX_ABS_DIFF = 1e-5


def weights_sha256(model: torch.nn.Module) -> str:
    """A hash of the weights alone (names, shapes and values), independent of the file format."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(data.shape)).encode())
        digest.update(data.numpy().tobytes())
    return digest.hexdigest()


def build_metadata(
    model: Autoencoder,
    *,
    name: str,
    version: str,
    dataset: Mapping[str, Any],
    recipe: Mapping[str, Any],
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
) -> dict[str, Any]:
    """Everything the service and a person need to know about the exported file."""
    side = model.cfg.image_side
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "input_shape": [1, side, side],
        "embedding_dim": model.cfg.embedding_dim,
        "value_range": [0.0, 1.0],
        "architecture": model.cfg.to_dict(),
        "dataset": dict(dataset),
        "recipe": dict(recipe),
        "metrics": dict(metrics),
        "training": dict(training),
        "torch_version": torch.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "weights_sha256": weights_sha256(model),
    }


@contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Silence only TorchScript's own deprecation notices: we script, save and load on purpose."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings(
                "ignore", message=r".*(TorchScript|torch\.jit).*", category=category
            )
        yield


def script(model: Autoencoder) -> torch.jit.ScriptModule:
    with quiet_torchscript():
        return torch.jit.script(model.cpu().eval())


def load_scripted(path: Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported file and its metadata, as the service does (without `training`)."""
    extra = {METADATA_FILE: ""}
    with quiet_torchscript():
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra[METADATA_FILE])


def export(model: Autoencoder, path: Path, metadata: Mapping[str, Any]) -> Path:
    """Script, save atomically with the metadata embedded, load back and compare with eager."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scripted = script(model)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        extra = {METADATA_FILE: json.dumps(metadata, indent=2, sort_keys=True)}
        with quiet_torchscript():
            scripted.save(str(tmp), _extra_files=extra)
        check_round_trip(model, tmp)
        tmp.chmod(0o644)  # mkstemp makes it owner-only; the file is meant to be shared
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_round_trip(model: Autoencoder, path: Path, seed: int = 0) -> float:
    """Max abs difference between the file and the eager model on every exported method."""
    loaded, metadata = load_scripted(path)
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: metadata.json is missing or has the wrong format_version")
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(
        8, 1, model.cfg.image_side, model.cfg.image_side, generator=gen
    )  # (8, 1, 28, 28)
    z = torch.randn(8, model.cfg.embedding_dim, generator=gen)  # (8, 64)
    eager = model.cpu().eval()
    with torch.inference_mode():
        diffs = [
            (loaded.encode(x) - eager.encode(x)).abs().max().item(),
            (loaded.decode(z) - eager.decode(z)).abs().max().item(),
            (loaded(x) - eager(x)).abs().max().item(),
        ]
    worst = max(diffs)
    if worst > MAX_ABS_DIFF:
        raise ValueError(
            f"{path}: exported model differs from eager by {worst:.2e} > {MAX_ABS_DIFF}"
        )
    return worst
