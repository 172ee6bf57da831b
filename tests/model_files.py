"""Model files for the reliability tests: real exports, a slow model, broken files.

The slow model is a real TorchScript artifact whose `decode` spends `z[0, 0] + 1000 * z[0, 1]`
rounds of a 256x256 matrix product before drawing a flat grey digit: a request chooses how long
its batch takes (`slow_decode_body`), and warm-up (random inputs in [0, 1)) stays fast. Two
values, because the service refuses embedding values beyond 1e4.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from training.export import build_metadata, export, quiet_torchscript
from training.model import Autoencoder, AutoencoderConfig

SIDE = 28


def export_autoencoder(path: Path, version: str, embedding_dim: int = 64, seed: int = 0) -> Path:
    """An untrained autoencoder, exported the way training exports a real one."""
    torch.manual_seed(seed)
    model = Autoencoder(AutoencoderConfig(channels=(16, 32, embedding_dim)))
    metadata = build_metadata(
        model, name="mnist-ae", version=version, dataset={}, recipe={}, metrics={}, training={}
    )
    return export(model, path, metadata)


class SlowAutoencoder(nn.Module):
    def __init__(self, embedding_dim: int = 64) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.side = SIDE
        self.weight = nn.Parameter(torch.randn(256, 256) / 16)  # (256, 256)

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        return x.flatten(1)[:, : self.embedding_dim]  # (N, 784) -> (N, D), values in [0, 1]

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        rounds = int(z[0, 0].clamp(0, 999).item()) + 1000 * int(z[0, 1].clamp(0, 1e4).item())
        work = torch.zeros(())
        for _ in range(rounds):
            work = (self.weight @ (self.weight + work)).mean()  # (256, 256) -> (), chained
        grey = torch.sigmoid(z.mean(dim=1) + 0 * work)  # (N,)
        flat = grey[:, None, None, None]  # (N, 1, 1, 1)
        return flat.expand(-1, 1, self.side, self.side).contiguous()  # (N, 1, 28, 28)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def write_slow_model(path: Path, version: str = "slow-1") -> Path:
    module = SlowAutoencoder()
    metadata = {
        "format_version": 1,
        "name": "mnist-ae",
        "version": version,
        "input_shape": [1, SIDE, SIDE],
        "embedding_dim": module.embedding_dim,
        "weights_sha256": "0" * 64,
    }
    save_scripted(module, path, metadata)
    return path


def save_scripted(module: nn.Module, path: Path, metadata: dict[str, Any] | None) -> None:
    extra = {"metadata.json": json.dumps(metadata)} if metadata is not None else {}
    with quiet_torchscript():
        torch.jit.script(module.eval()).save(str(path), _extra_files=extra)


def rounds_for(seconds: float) -> int:
    """How many decode rounds of the slow model take about `seconds` on one thread here."""
    with quiet_torchscript():
        module = torch.jit.script(SlowAutoencoder().eval())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        probe = 200
        z = torch.zeros(1, SlowAutoencoder().embedding_dim)
        z[0, 0] = probe
        with torch.inference_mode():
            module.decode(z)  # TorchScript's first calls profile and optimise
            began = time.perf_counter()
            module.decode(z)
        per_round = (time.perf_counter() - began) / probe
    finally:
        torch.set_num_threads(threads)
    return max(1, int(seconds / per_round))


def slow_decode_body(rounds: int) -> dict[str, list[float]]:
    """A /decode body that keeps the slow model busy for `rounds` rounds."""
    thousands, rest = divmod(rounds, 1000)
    return {
        "embedding": [float(rest), float(thousands)] + [0.0] * (SlowAutoencoder().embedding_dim - 2)
    }


def write_without_metadata(path: Path) -> Path:
    save_scripted(SlowAutoencoder(), path, None)
    return path


def write_truncated(source: Path, path: Path) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
