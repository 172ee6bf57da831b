"""Settling the process's memory once the model is loaded and warm.

Start-up leaves three costs behind. The objects it created (torch, the app, the model: some
220,000) live as long as the process, yet every full garbage collection walks them, 0.1 s paid
inside the latency of every request in flight. The warm-up's scratch tensors, freed, stay in
glibc's heap, counted in the RSS: about 9 MB. And torch's CUDA build maps its GPU libraries
(cuBLAS, NVRTC, nvJitLink...) at import, whatever the device: on Linux 6.18, which reads most
of each file in as it loads, some 280 MB of the RSS of a service that runs on the CPU, for code
that never runs there.
"""

from __future__ import annotations

import ctypes
import gc
from pathlib import Path
from typing import Any

MADV_PAGEOUT = 21  # Linux 5.4 and later; older kernels refuse it and nothing changes
# Path parts of the libraries that only a GPU runs: CUDA's own (pip's nvidia-* packages) and
# torch's CUDA half.
GPU_LIBRARIES = ("/nvidia/", "/libtorch_cuda", "/libc10_cuda", "/libcudnn", "/libnccl")


def settle(on_gpu: bool) -> None:
    """Freeze what exists now out of the collector's sight, and hand free heap to the OS; on
    the CPU, the GPU libraries' pages too. From then on, keep scratch memory for reuse."""
    gc.collect()
    gc.freeze()
    release_free_heap()
    if not on_gpu:
        release_gpu_libraries()
    keep_scratch_memory()


# mallopt's parameters (malloc.h) and their values here.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_FROM = 32 << 20  # bytes: glibc's own ceiling for its moving threshold
TRIM_FROM = 16 << 20  # bytes of free heap above the last block in use


def keep_scratch_memory() -> None:
    """glibc: buffers up to 32 MiB from the heap, not fresh mappings, and up to 16 MiB of free
    heap kept. A 1080x1080 canvas's decode makes and frees a dozen buffers of 0.5 to 3.5 MB;
    glibc's moving thresholds still handed the codec threads' heaps back to the kernel after
    each one, and every page of the next buffer was faulted in and zeroed again: the decode
    took 12 ms of CPU instead of 6 (a client posting canvases back to back, 2 cores). Memory
    the service holds grows by at most that much free heap per arena in use."""
    mallopt = _libc("mallopt")
    if mallopt is not None:
        mallopt(M_MMAP_THRESHOLD, MMAP_FROM)
        mallopt(M_TRIM_THRESHOLD, TRIM_FROM)


def _libc(name: str) -> Any:
    """A function of the C library this process runs on; None where it has none of that name."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def release_free_heap() -> None:
    """glibc's `malloc_trim`; elsewhere (musl, macOS) nothing to do."""
    trim = _libc("malloc_trim")
    if trim is not None:
        trim(0)


def release_gpu_libraries() -> int:
    """Ask the kernel to reclaim the resident pages of the GPU libraries' read-only mappings
    (their code and constants: clean pages, nothing is written out). A page used after all
    comes back from the page cache. The kernel leaves alone a page another process maps too,
    such as another worker. Returns how many mappings were asked."""
    madvise = _libc("madvise")
    maps = Path("/proc/self/maps")
    if madvise is None or not maps.exists():
        return 0
    lines = maps.read_text().splitlines()
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    asked = 0
    for line in lines:
        fields = line.split(maxsplit=5)  # address perms offset dev inode path
        if len(fields) < 6 or "w" in fields[1] or not any(p in fields[5] for p in GPU_LIBRARIES):
            continue
        start, end = (int(bound, 16) for bound in fields[0].split("-"))
        asked += madvise(start, end - start, MADV_PAGEOUT) == 0
    return asked
