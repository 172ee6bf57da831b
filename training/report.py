"""The run report: loss curves, reconstructions over the epochs, an interpolation, metrics.json.

Files written into the run's folder:

- `loss.png`: training loss and held-out MSE per epoch (log scale), the seed's 0.0077 for scale.
- `reconstructions.png`: one held-out digit per class, over their reconstructions at a few epochs.
- `interpolation.png`: two held-out digits of different classes, and the decoded frames of
  `(1 - t) * e_start + t * e_end` for t from 0 to 1 (both ends included).
- `metrics.json`: the exported model's metadata, which holds the metrics per epoch.

Figures are drawn with matplotlib's object API (no pyplot, no global backend state): PNG via Agg.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.nn import functional as F

from training.data import Digits

SEED_FINAL_LOSS = 0.0077
INTERPOLATION_CLASSES = (3, 7)
INTERPOLATION_STEPS = 10
FILES = ("loss.png", "reconstructions.png", "interpolation.png", "metrics.json")


def snapshot_epochs(epochs: int, count: int = 5) -> list[int]:
    """About `count` epochs spread on a log scale from the first to the last."""
    marks = np.geomspace(1, epochs, num=min(count, epochs))
    return sorted({int(round(mark)) for mark in marks} | {1, epochs})


def first_of_each_class(labels: Tensor, limit: int = 10) -> list[int]:
    """Index of the first digit of each class, in class order (up to `limit` classes)."""
    return [int(torch.nonzero(labels == c)[0]) for c in torch.unique(labels)[:limit]]


class Snapshots:
    """Reconstructions of a fixed set of held-out digits at a few epochs during training."""

    def __init__(self, val: Digits, epochs: int, device: torch.device) -> None:
        self.originals = val.images[first_of_each_class(val.labels)]  # (10, 1, 28, 28)
        self.epochs = snapshot_epochs(epochs)
        self.device = device
        self.images: dict[int, Tensor] = {}

    @torch.inference_mode()
    def __call__(self, epoch: int, model: nn.Module) -> None:
        if epoch in self.epochs:
            model.eval()
            self.images[epoch] = model(self.originals.to(self.device)).cpu()  # (10, 1, 28, 28)


def write_report(
    out: Path, metadata: dict[str, Any], snapshots: Snapshots, model: nn.Module, val: Digits
) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    metrics = metadata["metrics"]
    plot_losses(out / "loss.png", metrics["train_loss_per_epoch"], metrics["val_mse_per_epoch"])
    plot_reconstructions(out / "reconstructions.png", snapshots)
    plot_interpolation(out / "interpolation.png", model, val)
    report = {**metadata, "snapshot_epochs": sorted(snapshots.images)}
    (out / "metrics.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def plot_losses(path: Path, train: list[float], val: list[float]) -> None:
    epochs = np.arange(1, len(train) + 1)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(epochs, train, marker=".", label="training loss (running, per epoch)")
    ax.plot(epochs, val, marker=".", label=f"held-out MSE (final {val[-1]:.4f})")
    ax.axhline(SEED_FINAL_LOSS, color="grey", linestyle=":", label="the seed's final loss 0.0077")
    ax.set(xlabel="epoch", ylabel="per-pixel MSE", yscale="log", title="Autoencoder loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)


def tile(images: Tensor, pad: int = 2) -> np.ndarray:
    """One row of images separated by grey bars."""
    padded = F.pad(images[:, 0], (pad, pad, pad, pad), value=0.5)  # (n, 28 + 2p, 28 + 2p)
    return torch.cat(list(padded), dim=1).numpy()  # (28 + 2p, n * (28 + 2p))


def show_tiles(
    path: Path, rows: list[Tensor], row_labels: list[str], col_labels: list[str]
) -> None:
    """Rows of equally many images as one picture; labels on the left and (if any) on top."""
    picture = np.concatenate([tile(row) for row in rows])  # (rows * 32, cols * 32)
    cell = picture.shape[0] / len(rows)
    cols = len(rows[0])
    fig = Figure(figsize=(0.5 * cols + 1.0, 0.5 * len(rows) + 0.5), layout="tight")
    ax = fig.add_subplot()
    ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
    ax.set_yticks((np.arange(len(rows)) + 0.5) * cell, row_labels)
    ax.set_xticks((np.arange(len(col_labels)) + 0.5) * cell, col_labels, fontsize=8)
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    fig.savefig(path, dpi=120)


def plot_reconstructions(path: Path, snapshots: Snapshots) -> None:
    epochs = sorted(snapshots.images)
    rows = [snapshots.originals, *(snapshots.images[e] for e in epochs)]
    labels = ["original", *(f"epoch {e}" for e in epochs)]
    show_tiles(path, rows, labels, [])


def pick_pair(labels: Tensor) -> tuple[int, int]:
    """Indices of two held-out digits of different classes (3 and 7 when present)."""
    present = set(torch.unique(labels).tolist())
    a, b = INTERPOLATION_CLASSES
    if not {a, b} <= present:
        a, b = sorted(present)[:2]
    return int(torch.nonzero(labels == a)[0]), int(torch.nonzero(labels == b)[0])


@torch.inference_mode()
def interpolate(model: nn.Module, start: Tensor, end: Tensor, steps: int) -> Tensor:
    """Decoded frames from `start` to `end` (both (1, 1, 28, 28)), both ends included."""
    model.eval()
    ends = model.encode(torch.cat([start, end]))  # (2, 64)
    t = torch.linspace(0, 1, steps, device=ends.device)[:, None]  # (steps, 1)
    return model.decode((1 - t) * ends[0] + t * ends[1])  # (steps, 1, 28, 28)


def plot_interpolation(path: Path, model: nn.Module, val: Digits) -> None:
    i, j = pick_pair(val.labels)
    start, end = val.images[i : i + 1], val.images[j : j + 1]  # (1, 1, 28, 28) each
    frames = interpolate(model, start, end, INTERPOLATION_STEPS).cpu()  # (steps, 1, 28, 28)
    times = [f"{t:.2f}".rstrip("0").rstrip(".") for t in np.linspace(0, 1, len(frames))]
    row = torch.cat([start, frames, end])  # (steps + 2, 1, 28, 28)
    show_tiles(path, [row], [""], ["start", *(f"t={t}" for t in times), "end"])
