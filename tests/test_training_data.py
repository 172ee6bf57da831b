"""Data sources and the seeded, stratified split."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from training.data import (
    IDX_FILES,
    MissingDataError,
    SplitError,
    allocate,
    load_digits,
    split_digits,
    stratified_split,
)

LABELS = np.repeat(np.arange(10), 500)  # the shape of mnist-5k: 500 per class


def test_split_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    first = stratified_split(LABELS, 4096, None, seed=0)
    again = stratified_split(LABELS, 4096, None, seed=0)
    other = stratified_split(LABELS, 4096, None, seed=1)

    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_split_is_disjoint_complete_and_stratified() -> None:
    train, val = stratified_split(LABELS, 4096, None, seed=0)

    assert (len(train), len(val)) == (4096, 904)
    assert not set(train) & set(val)
    assert sorted({*train, *val}) == list(range(len(LABELS)))
    # 4096 / 10 = 409.6 per class: every class gets 409 or 410, the rest is held out.
    assert set(np.bincount(LABELS[train])) <= {409, 410}
    assert set(np.bincount(LABELS[val])) <= {90, 91}


def test_split_keeps_class_shares_of_an_unbalanced_pool() -> None:
    labels = np.array([0] * 700 + [1] * 200 + [2] * 100)
    train, val = stratified_split(labels, 500, 100, seed=3)

    assert np.bincount(labels[train]).tolist() == [350, 100, 50]
    assert np.bincount(labels[val]).tolist() == [70, 20, 10]


def test_allocate_hands_out_exactly_the_total() -> None:
    counts = np.array([500] * 10)
    for total in (1, 9, 256, 4096, 4999):
        assert allocate(counts, total).sum() == total


def test_split_larger_than_the_pool_is_a_clear_error() -> None:
    with pytest.raises(SplitError, match="--train-size"):
        stratified_split(LABELS, 4096, 1000, seed=0)


def test_mnist_5k_loads_offline_as_unit_range_images() -> None:
    digits = load_digits("mnist-5k")

    assert digits.images.shape == (5000, 1, 28, 28)
    assert digits.images.dtype == torch.float32
    assert 0.0 == digits.images.min() and digits.images.max() == 1.0
    assert torch.bincount(digits.labels).tolist() == [500] * 10

    train, val = split_digits(digits, 4096, None, seed=0)
    assert (len(train), len(val)) == (4096, 904)


def test_missing_mnist_files_name_what_to_put_where(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError) as caught:
        load_digits("mnist", tmp_path, download=False)

    message = str(caught.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert all(name in message for name in IDX_FILES)
    assert "--download" in message


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (the MNIST format): magic, dimensions, then the unsigned bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as out:
        out.write(header + array.astype(np.uint8).tobytes())


def test_gzipped_files_in_the_data_dir_are_read_without_network(tmp_path: Path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, size=(30, 28, 28))
    labels = np.arange(30) % 10
    for stem in IDX_FILES:
        write_idx(raw / f"{stem}.gz", images if "images" in stem else labels)

    digits = load_digits("fashion-mnist", tmp_path, download=False)

    assert digits.images.shape == (30, 1, 28, 28)
    assert torch.equal((digits.images[:, 0] * 255).round().long(), torch.from_numpy(images))
    assert digits.labels.tolist() == labels.tolist()
