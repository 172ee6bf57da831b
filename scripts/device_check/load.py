"""The benchmark's /reconstruct cells on the device, one service per largest batch size, run by
the bench package (bench/run.py: wrk, warm-up, pause, peak RSS per cell)."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.run import Cell, Options, bench
from bench.run import planned_seconds as bench_planned_seconds
from scripts.device_check.device import GpuMemory


@dataclass(frozen=True)
class Plan:
    batch_sizes: tuple[int, ...] = (32, 256)
    concurrency: tuple[int, ...] = (1, 64, 256)
    seconds: float = 8.0
    warmup: float = 2.0


@dataclass
class Mode:
    """The cells of one service started with AE_MAX_BATCH_SIZE = `batch_size`."""

    batch_size: int
    cells: list[Cell] = field(default_factory=list)
    service: dict[str, object] = field(default_factory=dict)  # GET /model's device, batching
    device_mib: float | None = None  # the GPU's peak memory in use over its cells, less before


def skipped() -> str:
    """Why no cell can run here, or "" when they can."""
    if shutil.which("wrk") is None:
        return "wrk is not installed (scripts/install-system-deps.sh wrk installs it)"
    return ""


def run(plan: Plan, device: str, work: Path, gpu: GpuMemory) -> list[Mode]:
    modes = []
    for size in plan.batch_sizes:
        began = time.monotonic()
        result = bench(_options(plan, size, device, work))
        mode = Mode(size, result.cells, result.services.get(_label(size), {}))
        mode.device_mib = gpu.peak(began, time.monotonic())
        modes.append(mode)
    return modes


def failures(modes: list[Mode]) -> list[str]:
    """Cells that did not run, or had errors (anything but 2xx and 503 with Retry-After)."""
    found = []
    for mode in modes:
        for cell in mode.cells:
            where = f"max batch {mode.batch_size}, c={cell.connections}"
            if cell.result is None:
                found.append(f"{where}: {(cell.failure or 'did not run').splitlines()[0]}")
            elif cell.result.errors:
                found.append(f"{where}: {cell.result.errors} errors")
    return found


def planned_seconds(plan: Plan) -> float:
    return sum(
        bench_planned_seconds(_options(plan, size, "cpu", Path("."))) for size in plan.batch_sizes
    )


def _options(plan: Plan, size: int, device: str, work: Path) -> Options:
    label = _label(size)
    return Options(
        targets=("reconstruct",), concurrency=plan.concurrency, modes=(label,),
        mode_env={label: {"AE_MAX_BATCH_SIZE": str(size)}}, seconds=plan.seconds,
        warmup=plan.warmup, device=device, work=work / label, crosscheck=False,
    )  # fmt: skip


def _label(size: int) -> str:
    return f"max-batch-{size}"
