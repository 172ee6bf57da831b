"""Settling memory after start-up: the collector no longer walks start-up objects, and glibc
hands its free heap back (where there is no glibc, nothing happens and nothing fails)."""

from __future__ import annotations

import gc
import platform
import re
from pathlib import Path

import numpy as np
import pytest

from service import heap


def test_settle_freezes_what_exists_and_later_objects_stay_collectable() -> None:
    before = gc.get_freeze_count()
    try:
        heap.settle()
        assert gc.get_freeze_count() > before
        cycle: list[object] = []
        cycle.append(cycle)  # made after the freeze: a full collection must still find it
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()


def _anon_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"RssAnon:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


@pytest.mark.skipif(
    not Path("/proc/self/status").exists() or platform.libc_ver()[0] != "glibc",
    reason="glibc on Linux",
)
def test_freed_heap_goes_back_to_the_os() -> None:
    # 64 KiB blocks come from glibc's heap (under its mmap threshold); the last one stays alive
    # so that the heap cannot simply shrink from its top on its own.
    blocks = [np.ones(16 * 1024, np.float32) for _ in range(1600)]  # 100 MiB
    keep = blocks[-1]
    del blocks
    before = _anon_rss_mb()
    heap.release_free_heap()
    assert before - _anon_rss_mb() > 50
    assert keep.sum() == 16 * 1024
