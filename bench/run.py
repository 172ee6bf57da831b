"""The bench's plan and its loop: servers started once per mode, one wrk cell per target and
concurrency, each after a short warm-up that is not counted and a pause (`SETTLE_S`), and at
256 connections a hey run on echo and /reconstruct as a cross-check of wrk's tail (see
bench/hey.py)."""

from __future__ import annotations

import contextlib
import functools
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import drawings, machine, payloads
from bench.hey import HeyResult, run_hey
from bench.servers import PeakRSS, Server, StartFailed, start_echo, start_service
from bench.wrk import Body, LoadGeneratorFailed, WrkResult, run_wrk

INFER = "/v2/models/{model}/infer"  # OIP, on the model the service names
ROUTES = {
    "reconstruct": "/reconstruct", "encode": "/encode", "decode": "/decode", "echo": "/echo",
    "oip": INFER, "oip-json": INFER,
}  # fmt: skip
LABELS = {**ROUTES, "oip": f"{INFER} (binary)", "oip-json": f"{INFER} (JSON)"}
BODY_OF = {
    "reconstruct": "png", "encode": "png", "decode": "embedding", "echo": "png",
    "oip": "oip-binary", "oip-json": "oip-json",
}  # fmt: skip
SERVICE_TARGETS = ("reconstruct", "encode", "decode", "oip", "oip-json")
# OIP's cells, beside /reconstruct's, with batching on only: one 28x28 UINT8 digit as binary at
# these connections, and as JSON numbers at 64.
OIP_CONCURRENCY = {"oip": (1, 64, 256), "oip-json": (64,)}
DEFAULT_MODEL = "mnist-ae"
MODES = {"on": {}, "off": {"AE_MAX_BATCH_SIZE": "1"}}  # AE_* overrides of each mode
ECHO = "echo"  # the mode label of the echo app's cells
EXTERNAL = "as running"  # the mode label of cells against --url
CROSSCHECK_AT = 256  # connections
CROSSCHECKED = (ECHO, "reconstruct")  # targets, with batching on


# A pause between a cell's warm-up and its measured run. The warm-up stops with up to one
# request per connection in flight; while the server finished those and closed their
# connections, the measured run opened its own, and at 256 connections that alone put 0.4 to
# 1.3 s into wrk's p99 (0.15 s with the pause). The service's own latency histogram had every
# one of those requests under 0.2 s: the delay was in the connections, not the service.
SETTLE_S = 1.0
DRAWINGS = "drawings"  # bench/drawings.py's cells: big canvases, and digits beside them


@dataclass(frozen=True)
class Options:
    targets: tuple[str, ...] = (*ROUTES, DRAWINGS)
    concurrency: tuple[int, ...] = (1, 16, 64, 256)
    modes: tuple[str, ...] = tuple(MODES)
    mode_env: dict[str, dict[str, str]] = field(default_factory=lambda: dict(MODES))  # per mode
    seconds: float = 8.0
    warmup: float = 2.0
    threads: int = 1
    timeout_s: float = 5.0
    device: str | None = None
    model: Path | None = None
    url: str | None = None
    work: Path = Path("bench/out")
    crosscheck: bool = True  # hey at CROSSCHECK_AT connections, when that is one of the cells

    def service_env(self, mode: str) -> dict[str, str]:
        env = dict(self.mode_env[mode])
        if self.device:
            env["AE_DEVICE"] = self.device
        if self.model:
            env["AE_MODEL_PATH"] = str(self.model.resolve())
        return env


@dataclass
class Cell:
    target: str
    mode: str  # "on", "off", ECHO or EXTERNAL
    connections: int
    result: WrkResult | None = None
    peak_rss_mb: float | None = None
    failure: str | None = None


@dataclass
class CrossCheck:
    target: str
    mode: str
    connections: int
    result: HeyResult | None = None
    failure: str | None = None


@dataclass
class Run:
    options: Options
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    machine: dict[str, Any] = field(default_factory=machine.describe)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # mode -> GET /model
    bodies: dict[str, Body] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    crosschecks: list[CrossCheck] = field(default_factory=list)
    canvases: drawings.Drawings | None = None  # with batching on
    seconds: float = 0.0
    load_after: float | None = None

    def cell(self, target: str, mode: str, connections: int) -> Cell | None:
        for cell in self.cells:
            if (cell.target, cell.mode, cell.connections) == (target, mode, connections):
                return cell
        return None

    @property
    def failed(self) -> list[Cell]:
        return [cell for cell in self.cells if cell.failure]


def bench(options: Options) -> Run:
    run = Run(options)
    began = time.perf_counter()
    run.bodies = payloads.write_bodies(options.work, None)
    if ECHO in options.targets:
        _measure_server(run, ECHO, (ECHO,), functools.partial(start_echo, options.work))
    targets = tuple(t for t in options.targets if t in SERVICE_TARGETS)
    if (targets or DRAWINGS in options.targets) and options.url:
        _measure_server(run, EXTERNAL, targets, functools.partial(_external, options.url))
    elif targets or DRAWINGS in options.targets:
        for mode in options.modes:
            env, name = options.service_env(mode), f"service-{mode}"
            _measure_server(
                run, mode, targets, functools.partial(start_service, name, env, options.work)
            )
    run.seconds = time.perf_counter() - began
    run.load_after = machine.load_average()
    return run


def concurrencies(options: Options, target: str, mode: str) -> tuple[int, ...]:
    """The connection counts a target is measured at in a mode."""
    if target not in OIP_CONCURRENCY:
        return options.concurrency
    if mode == "off":
        return ()
    return tuple(c for c in options.concurrency if c in OIP_CONCURRENCY[target])


def planned_seconds(options: Options) -> float:
    modes = (EXTERNAL,) if options.url else options.modes
    service = [t for t in options.targets if t in SERVICE_TARGETS]
    cells = sum(len(concurrencies(options, t, m)) for t in service for m in modes)
    cells += len(options.concurrency) if ECHO in options.targets else 0
    checks = sum(t in CROSSCHECKED for t in options.targets) if _crosschecking(options) else 0
    settle = SETTLE_S if options.warmup > 0 else 0.0
    drawn = drawings.planned_seconds(options.seconds, options.warmup, settle)
    return (cells + checks) * (options.seconds + options.warmup + settle + 0.5) + (
        drawn if DRAWINGS in options.targets else 0.0
    )


def _crosschecking(options: Options) -> bool:
    return options.crosscheck and CROSSCHECK_AT in options.concurrency


def _measure_server(
    run: Run, mode: str, targets: tuple[str, ...], start: Callable[[], ContextManager[Server]]
) -> None:
    try:
        with start() as server:
            if mode != ECHO:
                run.services[mode] = _model_info(server)
                run.bodies = payloads.write_bodies(run.options.work, server.url)
            for target in targets:
                for connections in concurrencies(run.options, target, mode):
                    run.cells.append(_measure(run, server, target, mode, connections))
            for target in targets:
                if _crosschecking(run.options) and target in CROSSCHECKED and mode != "off":
                    run.crosschecks.append(_crosscheck(run, server, target, mode))
            if DRAWINGS in run.options.targets and mode in ("on", EXTERNAL):
                digit = run.bodies["png"]
                run.canvases = drawings.measure(server.url, digit, run.options, SETTLE_S)
    except StartFailed as exc:
        run.cells.extend(
            Cell(t, mode, c, failure=str(exc))
            for t in targets
            for c in concurrencies(run.options, t, mode)
        )
        _say(f"{mode}: could not start: {exc}")


def _measure(run: Run, server: Server, target: str, mode: str, connections: int) -> Cell:
    o, cell = run.options, Cell(target, mode, connections)
    model = run.services.get(mode, {}).get("name") or DEFAULT_MODEL
    url = server.url + ROUTES[target].format(model=model)
    body = run.bodies[BODY_OF[target]]
    if not server.alive():
        cell.failure = f"{server.name} is no longer running:\n{server.log_tail()}"
        return cell
    try:
        if o.warmup > 0:
            run_wrk(url, body, connections, o.warmup, o.threads, o.timeout_s)
            time.sleep(SETTLE_S)
        with PeakRSS(server.pid) as rss:
            cell.result = run_wrk(url, body, connections, o.seconds, o.threads, o.timeout_s)
        cell.peak_rss_mb = rss.mb
    except (LoadGeneratorFailed, OSError) as exc:
        cell.failure = str(exc)
    _say(_progress_line(cell))
    return cell


def _crosscheck(run: Run, server: Server, target: str, mode: str) -> CrossCheck:
    o, check = run.options, CrossCheck(target, mode, CROSSCHECK_AT)
    url, body = server.url + ROUTES[target], run.bodies[BODY_OF[target]]
    if shutil.which("hey") is None:
        check.failure = "hey is not installed (scripts/install-system-deps.sh installs it)"
        return check
    try:
        if o.warmup > 0:
            run_hey(url, body, CROSSCHECK_AT, o.warmup, o.timeout_s)
            time.sleep(SETTLE_S)
        check.result = run_hey(url, body, CROSSCHECK_AT, o.seconds, o.timeout_s)
    except (LoadGeneratorFailed, OSError) as exc:
        check.failure = str(exc)
    r = check.result
    _say(
        f"{target:<12} {mode:<10} c={CROSSCHECK_AT:<4} hey: "
        + (f"{r.rps:8.0f} req/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  "
           f"errors {r.errors}  503 {r.overloaded}" if r else f"FAILED: {check.failure}")
    )  # fmt: skip
    return check


def _model_info(server: Server) -> dict[str, Any]:
    try:
        info: dict[str, Any] = httpx.get(f"{server.url}/model", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return {}
    keep = ("name", "version", "device", "batching")
    return {key: info.get(key) for key in keep}


@contextlib.contextmanager
def _external(url: str | None) -> Iterator[Server]:
    assert url is not None
    yield Server("service", url.rstrip("/"), None, None)


def _progress_line(cell: Cell) -> str:
    head = f"{cell.target:<12} {cell.mode:<10} c={cell.connections:<4}"
    if cell.result is None:
        return f"{head} FAILED: {(cell.failure or '').splitlines()[0][:200]}"
    r, rss = cell.result, f"{cell.peak_rss_mb:.0f} MB" if cell.peak_rss_mb else "n/a"
    return (
        f"{head} {r.rps:8.0f} req/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms  "
        f"errors {r.errors}  503 {r.overloaded}  rss {rss}"
    )


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
