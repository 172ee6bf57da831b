"""Prove the service on a device in one run: `make device-check` (what a GPU machine runs).

python -m scripts.device_check                  # AE_DEVICE, default cuda -> bench/RESULTS-cuda.md
AE_DEVICE=cpu python -m scripts.device_check --short --out /tmp/RESULTS-cpu.md   # as CI runs it

It starts `python -m service` on the device and a second one on the CPU, sends both every verb
in each form and format (and the Open Inference Protocol's routes, where the service has them),
and compares the device's answers with the CPU's within stated tolerances; checks the CPU's
service against the model file run by torch; runs the benchmark's /reconstruct cells with
AE_MAX_BATCH_SIZE 32 and 256; samples the device's memory throughout; writes the results file.
Exit status: 0 all within tolerance and no cell with errors, 1 otherwise, 2 when a service
could not start. Without wrk the cells are skipped, and the results file says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from bench import machine
from bench.__main__ import _counts as counts
from bench.servers import ROOT, PeakRSS, Server, StartFailed, start_service
from scripts.device_check import checks, device, load, tensors
from scripts.device_check.calls import Digits, native_calls, oip_calls
from scripts.device_check.report import Result, render
from service.settings import DEFAULT_MODEL_PATH

SHORT = {"seconds": 1.0, "warmup": 0.0}  # --short: the cells as CI runs them
NUMBERS = (  # the plan's options: flag, type, load.Plan field, help
    ("--batch-sizes", counts, "batch_sizes", "AE_MAX_BATCH_SIZE of the load cells' services"),
    ("--concurrency", counts, "concurrency", "wrk connections per cell"),
    ("--seconds", float, "seconds", "measured seconds per cell"),
    ("--warmup", float, "warmup", "uncounted seconds before each cell"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m scripts.device_check", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 1)[1],
    )  # fmt: skip
    d = load.Plan()
    p.add_argument("--device", default=os.environ.get("AE_DEVICE") or "cuda",
                   help="the device under check (default: AE_DEVICE, else cuda)")  # fmt: skip
    for flag, kind, field, what in NUMBERS:
        p.add_argument(flag, type=kind, default=getattr(d, field),
                       help=f"{what} (default: %(default)s)")  # fmt: skip
    p.add_argument("--short", action="store_true", help=f"short cells, as CI runs them: {SHORT}")
    p.add_argument("--no-load", action="store_true", help="check the answers only, no cells")
    p.add_argument("--out", type=Path, help="the results file (default: bench/RESULTS-<device>.md)")
    p.add_argument(
        "--work",
        type=Path,
        default=ROOT / "bench" / "out" / "device-check",
        help="service logs and wrk's bodies (default: bench/out/device-check)",
    )
    return p.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    # Stopped (a CI timeout, Ctrl-C), the services it started are stopped too, on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    seconds, warmup = (SHORT["seconds"], SHORT["warmup"]) if a.short else (a.seconds, a.warmup)
    plan = load.Plan(a.batch_sizes, a.concurrency, seconds, warmup)
    began = time.perf_counter()
    _say(f"device check of AE_DEVICE={a.device}: about {load.planned_seconds(plan) / 60:.1f} min "
         "of load, plus start-ups")  # fmt: skip
    result = Result(a.device, plan, machine.describe(), device.describe(a.device))
    gpu = device.GpuMemory(device.gpu_index(a.device))
    with gpu if a.device.startswith(("cuda", "auto")) else contextlib.nullcontext():
        result.gpu_baseline_mib = gpu.baseline
        try:
            with _services(a.device, a.work) as (dev, cpu):
                _answers(result, dev, cpu, gpu)
        except StartFailed as exc:
            result.fatal = f"a service could not start: {exc}"
        result.load_skipped = _why_no_load(result, a.no_load)
        if not result.load_skipped:
            _say("the /reconstruct cells")
            result.modes = load.run(plan, a.device, a.work, gpu)
    result.seconds, result.load_after = time.perf_counter() - began, machine.load_average()
    out = a.out or ROOT / "bench" / f"RESULTS-{_file_label(result)}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(result))
    return _verdict(result, out)


@contextlib.contextmanager
def _services(device: str, work: Path) -> Iterator[tuple[Server, Server]]:
    """The device's service and the CPU's, started side by side; StartFailed if either fails."""
    managers = [
        start_service("device", {"AE_DEVICE": device}, work),
        start_service("cpu-reference", {"AE_DEVICE": "cpu"}, work),
    ]
    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(len(managers)) as pool:
            futures = [pool.submit(manager.__enter__) for manager in managers]
        for manager, future in zip(managers, futures, strict=True):
            if future.exception() is None:
                stack.push(manager.__exit__)
        failed = [f.exception() for f in futures if f.exception() is not None]
        if failed:
            raise failed[0]  # type: ignore[misc]
        yield futures[0].result(), futures[1].result()


def _answers(result: Result, dev: Server, cpu: Server, gpu: device.GpuMemory) -> None:
    began, digits = time.monotonic(), Digits.make()
    with (
        httpx.Client(base_url=cpu.url, timeout=60) as c,
        httpx.Client(base_url=dev.url, timeout=60) as d,
        PeakRSS(dev.pid) as rss,
    ):
        models = c.get("/model").json(), d.get("/model").json()
        result.served_on = str(models[1].get("device"))
        _say(f"answers: the device's service runs on {result.served_on}")
        result.outcomes.append(checks.model_outcome(*models, result.device))
        model_path = Path(os.environ.get("AE_MODEL_PATH") or DEFAULT_MODEL_PATH)
        with _guard(result.outcomes, "the CPU's service against the model file"):
            result.outcomes.append(checks.artifact_outcome(c, model_path, digits))
        files = [("images", (f"{i}.png", png, "image/png")) for i, png in enumerate(digits.pngs)]
        embeddings = c.post("/encode", files=files).json()["embeddings"]  # (10, D)
        result.outcomes += checks.run_calls(c, d, native_calls(digits, embeddings))
        with _guard(result.outcomes, "the concurrent burst"):
            result.outcomes.append(checks.burst(c, d, digits))
        with _guard(result.oip, "the Open Inference Protocol requests"):
            _oip(result, c, d, digits, models[0], np.asarray(embeddings, np.float32))
    result.rss_mb, result.device_mib = rss.mb, gpu.peak(began, time.monotonic())


def _oip(
    result: Result, c: httpx.Client, d: httpx.Client, digits: Digits, model: dict[str, object],
    embeddings: np.ndarray,
) -> None:  # fmt: skip
    status = c.get("/v2").status_code
    if status == 404:
        result.oip_skipped = "GET /v2 answered 404: this service has no Open Inference Protocol"
        return
    _say("answers: the Open Inference Protocol")
    # PNG files: the drawing (large, RGB, dark on light) first, then the samples
    sources = tensors.Sources(digits.arrays, [digits.drawing, *digits.pngs], embeddings)
    calls = oip_calls(c, str(model["name"]), str(model["version"]), sources)
    result.oip += checks.run_calls(c, d, calls)


@contextlib.contextmanager
def _guard(outcomes: list[checks.Outcome], name: str) -> Iterator[None]:
    """A check that breaks is one failed outcome; the others go on, and the file is written."""
    try:
        yield
    except Exception as exc:
        broken = checks.Outcome(name)
        broken.diff.problems.append(f"broke: {type(exc).__name__}: {exc}")
        outcomes.append(broken)


def _why_no_load(result: Result, no_load: bool) -> str:
    if no_load:
        return "--no-load"
    if result.fatal:
        return "the device's service did not start"
    return load.skipped()


def _file_label(result: Result) -> str:
    device = result.device if result.device != "auto" else result.served_on or "auto"
    return device.replace(":", "-")


def _verdict(result: Result, out: Path) -> int:
    problems = result.problems()
    for problem in problems:
        _say(f"FAILED: {problem[:300]}")
    compared = len(result.outcomes) + len(result.oip)
    cells = sum(len(mode.cells) for mode in result.modes)
    _say(f"device check: {compared} answers compared, {cells} cells, {len(problems)} problems, "
         f"{result.seconds / 60:.1f} min; wrote {out}")  # fmt: skip
    if result.fatal:
        return 2
    return 1 if problems else 0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
