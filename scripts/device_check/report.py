"""bench/RESULTS-<device>.md from a check's `Result`: the verdict, the device, every answer
compared, the load cells and the memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scripts.device_check.checks import Outcome
from scripts.device_check.compare import TOLERANCES
from scripts.device_check.load import Mode, Plan, failures


@dataclass
class Result:
    device: str  # as asked (AE_DEVICE)
    plan: Plan
    machine: dict[str, Any]
    torch: dict[str, Any]
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0
    load_after: float = 0.0
    served_on: str = ""  # the device's service's own word (GET /model)
    outcomes: list[Outcome] = field(default_factory=list)
    oip: list[Outcome] = field(default_factory=list)
    oip_skipped: str = ""
    modes: list[Mode] = field(default_factory=list)
    load_skipped: str = ""
    device_mib: float | None = None  # the GPU's peak over the answers, less before
    gpu_baseline_mib: float | None = None
    rss_mb: float | None = None  # the device's service's peak RSS over the answers
    fatal: str = ""  # what stopped the check early

    def problems(self) -> list[str]:
        found = [self.fatal] if self.fatal else []
        found += [f"{o.name}: {p}" for o in self.outcomes + self.oip for p in o.diff.problems]
        return found + failures(self.modes)


def render(r: Result) -> str:
    parts = [
        f"# Device check: {r.device}\n",
        _preamble(r),
        "## Device\n",
        _device(r),
        "## Answers compared with the CPU's\n",
        f"Tolerances: {TOLERANCES}.\n",
        _outcomes(r.outcomes),
        "## Open Inference Protocol\n",
        f"Skipped: {r.oip_skipped}.\n" if r.oip_skipped else _outcomes(r.oip),
        "## /reconstruct under load\n",
        f"Skipped: {r.load_skipped}.\n" if r.load_skipped else _cells(r),
        _problems(r),
        "## Rerun\n",
        RERUN,
    ]
    return "\n".join(part for part in parts if part)


def _preamble(r: Result) -> str:
    m, problems = r.machine, r.problems()
    when = r.started.strftime("%Y-%m-%d %H:%M UTC")
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    verdict = "**Passed.**" if not problems else f"**Failed: {count}** (below)."
    noisy = (
        " Other work was running (load above the core count): timings are noisy."
        if max(m["load_before"], r.load_after) > m["cores"]
        else ""
    )
    return (
        f"Written by `make device-check` (`python -m scripts.device_check`) on {when} in "
        f"{r.seconds / 60:.1f} min, commit {m['commit']}. {verdict} Load average "
        f"{m['load_before']:.1f} before, {r.load_after:.1f} after.{noisy}\n"
    )


def _device(r: Result) -> str:
    m, t = r.machine, r.torch
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    lines = [f"- Asked: `AE_DEVICE={r.device}`; the service ran on `{r.served_on or '?'}`."]
    if t.get("name"):
        lines.append(
            f"- GPU: {t['name']}, {t['memory_gib']:.1f} GiB, compute capability "
            f"{t['capability']}, driver {t.get('driver', '?')}; CUDA {t['cuda_build']}, cuDNN "
            f"{t['cudnn']}; TF32 in convolutions {_on(t['tf32_convolutions'])}, in matrix "
            f"products {_on(t['tf32_matmul'])} (torch's defaults; the service sets neither)."
        )
    lines += [
        f"- torch {t.get('torch', '?')} (CUDA build: {t.get('cuda_build') or 'none'}, CUDA "
        f"available: {t.get('cuda_available')}).",
        f"- Machine: {m['cores']} cores, {m['cpu']}, {m.get('memory_gib') or 0:.0f} GiB, Linux "
        f"{m['kernel']}.",
        f"- Versions: {versions}.",
        f"- Peak memory while answering: {_memory(r.device_mib, r.rss_mb, r.gpu_baseline_mib)}.",
    ]
    return "\n".join(lines) + "\n"


def _memory(device_mib: float | None, rss_mb: float | None, baseline: float | None) -> str:
    rss = f"RSS {rss_mb:.0f} MB" if rss_mb else "RSS n/a"
    if device_mib is None:
        return rss
    return f"GPU {device_mib:,.0f} MiB (nvidia-smi memory.used less the {baseline:,.0f} MiB in use before), {rss}"  # noqa: E501


def _outcomes(outcomes: list[Outcome]) -> str:
    if not outcomes:
        return "Not run (see Problems).\n"
    lines = ["| | answer | measured |", "|---|---|---|"]
    for o in outcomes:
        lines.append(f"| {'pass' if o.passed else '**FAIL**'} | {o.name} | {o.measured} |")
    return "\n".join(lines) + "\n"


def _cells(r: Result) -> str:
    p = r.plan
    lines = [
        "| max batch | conns | req/s | p50 ms | p99 ms | errors | 503 | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in r.modes:
        for cell in mode.cells:
            head = f"| {mode.batch_size} | {cell.connections} |"
            if (w := cell.result) is None:
                lines.append(f"{head} failed | | | | | |")
                continue
            rss = f"{cell.peak_rss_mb:.0f}" if cell.peak_rss_mb else "n/a"
            lines.append(
                f"{head} {w.rps:,.0f} | {w.p50_ms:.2f} | {w.p99_ms:.2f} | {w.errors} | "
                f"{w.overloaded} | {rss} |"
            )
    memory = [
        f"- Max batch {mode.batch_size}: peak GPU memory {mode.device_mib:,.0f} MiB over its cells."
        for mode in r.modes
        if mode.device_mib is not None
    ]
    service = r.modes[0].service.get("batching", {}) if r.modes else {}
    note = (
        f"\nwrk, one thread, {p.seconds:g} s measured per cell after {p.warmup:g} s of warm-up, "
        f"one `python -m service` per max batch size (`AE_MAX_BATCH_SIZE`), other settings the "
        f"defaults ({_batching(service)}); one 28×28 digit PNG per request. errors: anything "
        "but 2xx and 503 with Retry-After.\n"
    )
    return "\n".join(lines) + "\n" + note + ("\n" + "\n".join(memory) + "\n" if memory else "")


def _batching(b: Any) -> str:
    if not isinstance(b, dict):
        return "?"
    return (
        f"max_batch_delay_ms {b.get('max_batch_delay_ms')}, max_queue {b.get('max_queue')}, "
        f"torch threads {b.get('torch_threads')}"
    )


def _problems(r: Result) -> str:
    problems = r.problems()
    if not problems:
        return ""
    listed = [f"- {p[:600]}" for p in problems if p != r.fatal]
    fatal = f"```\n{r.fatal.strip()}\n```\n" if r.fatal else ""
    return "## Problems\n\n" + fatal + "\n".join(listed) + "\n"


def _on(flag: object) -> str:
    return "on" if flag else "off"


RERUN = """```sh
make device-check                               # AE_DEVICE=cuda (the default), about 3 min
AE_DEVICE=cpu make device-check DEVICE_CHECK_ARGS=--short   # the CI run, about 1 min
python -m scripts.device_check --help
```
"""
