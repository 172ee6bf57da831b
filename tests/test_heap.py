"""Settling memory after start-up: the collector no longer walks start-up objects, and glibc
hands its free heap back (where there is no glibc, nothing happens and nothing fails)."""

from __future__ import annotations

import gc
import mmap
import os
import platform
import re
from pathlib import Path

import numpy as np
import pytest

from service.runtime import heap


def test_settle_freezes_what_exists_and_later_objects_stay_collectable() -> None:
    before = gc.get_freeze_count()
    try:
        heap.settle(on_gpu=True)
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


def _mapped_kb(path: Path) -> int:
    """Resident kB of this process's mappings of `path`."""
    total, counted = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            counted = len(fields) > 5 and fields[5] == str(path)
        elif counted and fields[0] == "Rss:":
            total += int(fields[1])
    return total


def _map_read_only(path: Path, size: int) -> mmap.mmap:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        out.write(os.urandom(size))
        out.flush()
        os.fsync(out.fileno())  # clean pages: the kernel can drop them without writing
    with path.open("rb") as file:
        mapped = mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ)
    for offset in range(0, size, mmap.PAGESIZE):
        mapped[offset]  # resident now
    return mapped


def _linux_at_least(major: int, minor: int) -> bool:
    release = [int(part) for part in re.findall(r"\d+", platform.release())[:2]]
    return platform.system() == "Linux" and release >= [major, minor]


@pytest.mark.skipif(not _linux_at_least(5, 4), reason="MADV_PAGEOUT: Linux 5.4 and later")
def test_pages_of_gpu_libraries_go_back_and_others_stay(tmp_path: Path) -> None:
    """Files of its own stand in for the libraries: torch's are mapped by every process of the
    suite, and the kernel leaves a page that another process maps too where it is."""
    size = 4 * 1024 * 1024
    gpu, other = tmp_path / "nvidia" / "cublas" / "libstandin.so", tmp_path / "libother.so"
    gpu_map, other_map = _map_read_only(gpu, size), _map_read_only(other, size)
    try:
        assert _mapped_kb(gpu) > 3000 and _mapped_kb(other) > 3000
        assert heap.release_gpu_libraries() >= 1
        assert _mapped_kb(gpu) < 1000
        assert _mapped_kb(other) > 3000
        assert gpu_map[size - 1] == gpu.read_bytes()[-1]  # a page used again comes back
    finally:
        gpu_map.close()
        other_map.close()
