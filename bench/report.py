"""bench/RESULTS.md from a `Run`: the headline against the targets, the tables, the setting."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from bench import drawings
from bench.run import CROSSCHECK_AT, ECHO, EXTERNAL, LABELS, ROUTES, SETTLE_S, Cell, CrossCheck, Run
from bench.wrk import WrkResult

TARGET_SHARE = 0.60  # /reconstruct at c=64 as a share of echo's requests/s
TARGET_SPEEDUP = 2.0  # batching on over off, same cell
TARGET_P50_GAP_MS = 2.0  # /reconstruct p50 at c=1 over echo's
TARGET_P99_MS = 1000.0  # at c=256
TARGET_RSS_MB = 600.0
TARGET_OIP_SHARE = 0.90  # OIP binary infer at c=64 as a share of /reconstruct's requests/s
MODE_LABEL = {"on": "on", "off": "off (AE_MAX_BATCH_SIZE=1)", ECHO: "–", EXTERNAL: "as running"}


@dataclass(frozen=True)
class Check:
    what: str
    target: str
    measured: str
    passed: bool


def render(run: Run, level: int = 1) -> str:
    h = "#" * level
    device = f" with AE_DEVICE={run.options.device}" if run.options.device else ""
    parts = [
        f"{h} Benchmark results{device}\n",
        _preamble(run),
        f"{h}# Headline\n",
        _headline(run),
        f"{h}# Requests per second\n",
        _rps_table(run),
        f"{h}# Every cell\n",
        _cells_table(run),
        _failures(run),
        f"{h}# Cross-check at c={CROSSCHECK_AT} with hey\n" if run.crosschecks else "",
        _crosscheck_table(run),
        f"{h}# Big drawings\n" if run.canvases else "",
        drawings.table(run.canvases) if run.canvases else "",
        f"{h}# Machine and settings\n",
        _setting(run),
        f"{h}# Rerun\n",
        _rerun(),
    ]
    return "\n".join(part for part in parts if part)


def _preamble(run: Run) -> str:
    when = run.started.strftime("%Y-%m-%d %H:%M UTC")
    load = run.machine["load_before"]
    noisy = (
        " Other work was running (load above the core count): treat the figures as noisy."
        if (max(load, run.load_after or 0) > run.machine["cores"])
        else ""
    )
    return (
        f"Written by `python -m bench` (`make bench`) on {when} in {run.seconds / 60:.1f} min, "
        f"on {run.machine['cores']} cores ({run.machine['cpu']}), commit "
        f"{run.machine['commit']}. Load average {load:.1f} before, "
        f"{(run.load_after or 0):.1f} after.{noisy}\n"
    )


# The headline


def _headline(run: Run) -> str:
    checks = list(_checks(run))
    if not checks:
        return "Not enough cells in this run for the headline (it needs /reconstruct and echo).\n"
    rows = [
        f"| {c.what} | {c.target} | {c.measured} | {'pass' if c.passed else '**miss**'} |"
        for c in checks
    ]
    return "\n".join(["| check | target | measured | |", "|---|---|---|---|", *rows, ""])


def _checks(run: Run) -> Iterator[Check]:
    on = _mode_of(run)
    rec, off, echo = (
        _result(run, "reconstruct", on, 64),
        _result(run, "reconstruct", "off", 64),
        _result(run, ECHO, ECHO, 64),
    )
    if rec and echo:
        share = rec.rps / echo.rps
        yield Check(
            "/reconstruct at c=64, share of echo's req/s", f"≥ {TARGET_SHARE:.0%}",
            f"{share:.0%} ({rec.rps:,.0f} of {echo.rps:,.0f} req/s)", share >= TARGET_SHARE,
        )  # fmt: skip
    if rec and off:
        speedup = rec.rps / off.rps
        yield Check(
            "/reconstruct at c=64, batching on over off", f"≥ {TARGET_SPEEDUP:g}×",
            f"{speedup:.1f}× ({rec.rps:,.0f} vs {off.rps:,.0f} req/s)", speedup >= TARGET_SPEEDUP,
        )  # fmt: skip
    if rec:
        bad = rec.errors + rec.overloaded
        yield Check("/reconstruct at c=64, errors and 503s", "0", str(bad), bad == 0)
    if rec and (oip := _result(run, "oip", on, 64)):
        share, bad = oip.rps / rec.rps, oip.errors + oip.overloaded
        yield Check(
            "OIP binary infer at c=64, share of /reconstruct's req/s; errors and 503s",
            f"≥ {TARGET_OIP_SHARE:.1f}×, 0",
            f"{share:.2f}× ({oip.rps:,.0f} vs {rec.rps:,.0f} req/s); {bad}",
            share >= TARGET_OIP_SHARE and bad == 0,
        )  # fmt: skip
    yield from _latency_checks(run, on)
    yield from _rss_check(run)
    if run.canvases is not None:
        yield from (Check(*row) for row in drawings.headline(run.canvases))


def _latency_checks(run: Run, on: str) -> Iterator[Check]:
    rec, echo = _result(run, "reconstruct", on, 1), _result(run, ECHO, ECHO, 1)
    if rec and echo:
        gap = rec.p50_ms - echo.p50_ms
        yield Check(
            "/reconstruct at c=1, p50 over echo's", f"≤ {TARGET_P50_GAP_MS:g} ms",
            f"{gap:+.2f} ms ({_ms(rec.p50_ms)} vs {_ms(echo.p50_ms)} ms)", gap <= TARGET_P50_GAP_MS,
        )  # fmt: skip
    for target in ("reconstruct", "encode", "decode"):
        if r := _result(run, target, on, 256):
            yield Check(
                f"{ROUTES[target]} at c=256: all answered (2xx or 503), p99",
                f"0 errors, p99 < {TARGET_P99_MS / 1000:g} s",
                f"{r.errors} errors, {r.overloaded} 503s, p99 {_ms(r.p99_ms)} ms",
                r.errors == 0 and r.p99_ms < TARGET_P99_MS,
            )
    if (check := _crosscheck(run, "reconstruct")) and check.result:
        r = check.result
        yield Check(
            f"/reconstruct at c={CROSSCHECK_AT} under hey (cross-check): all answered, p99",
            f"0 errors, p99 < {TARGET_P99_MS / 1000:g} s",
            f"{r.errors} errors, {r.overloaded} 503s, p99 {_ms(r.p99_ms)} ms",
            r.errors == 0 and r.p99_ms < TARGET_P99_MS,
        )


def _rss_check(run: Run) -> Iterator[Check]:
    peaks = [c.peak_rss_mb for c in run.cells if c.mode != ECHO and c.peak_rss_mb]
    if peaks:
        yield Check(
            "peak RSS of the service under load", f"< {TARGET_RSS_MB:g} MB",
            f"{max(peaks):.0f} MB", max(peaks) < TARGET_RSS_MB,
        )  # fmt: skip


# The tables


def _rps_table(run: Run) -> str:
    conns = run.options.concurrency
    head = "| endpoint | batching | " + " | ".join(f"c={c}" for c in conns) + " |"
    lines = [head, "|---|---|" + "---:|" * len(conns)]
    for target, mode in _rows(run):
        values = [_rps(run.cell(target, mode, c)) for c in conns]
        lines.append(
            f"| {LABELS[target]} | {MODE_LABEL.get(mode, mode)} | " + " | ".join(values) + " |"
        )
    return "\n".join(lines) + "\n\nRequests/s counts every completed response, 503s included.\n"


def _cells_table(run: Run) -> str:
    lines = [
        "| endpoint | batching | conns | req/s | p50 ms | p99 ms | errors | 503 | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for target, mode in _rows(run):
        for c in run.options.concurrency:
            cell = run.cell(target, mode, c)
            if cell is not None:
                lines.append(_cell_row(cell))
    note = (
        "\nerrors: responses other than 2xx and 503-with-Retry-After, plus socket errors and "
        "timeouts (wrk `--timeout` "
        f"{run.options.timeout_s:g} s); 503: the queue bound answering with Retry-After. Peak RSS "
        "of the server process during the measured seconds (VmHWM reset per cell, and VmRSS "
        "sampled every 100 ms).\n"
    )
    return "\n".join(lines) + "\n" + note


def _cell_row(cell: Cell) -> str:
    label = (
        f"| {LABELS[cell.target]} | {MODE_LABEL.get(cell.mode, cell.mode)} | {cell.connections} |"
    )
    if not _ok(cell):
        return f"{label} failed | | | | | |"
    r = cell.result
    assert r is not None
    rss = f"{cell.peak_rss_mb:.0f}" if cell.peak_rss_mb else "n/a"
    values = [_rps(cell), _ms(r.p50_ms), _ms(r.p99_ms), str(r.errors), str(r.overloaded), rss]
    return f"{label} " + " | ".join(values) + " |"


def _rows(run: Run) -> list[tuple[str, str]]:
    """(target, mode) pairs in reading order: echo first, then each endpoint on, off."""
    seen: list[tuple[str, str]] = []
    for cell in run.cells:
        if (cell.target, cell.mode) not in seen:
            seen.append((cell.target, cell.mode))

    def order(pair: tuple[str, str]) -> tuple[int, int]:
        target, mode = pair
        first = -1 if target == ECHO else list(ROUTES).index(target)
        return first, list(MODE_LABEL).index(mode) if mode in MODE_LABEL else len(MODE_LABEL)

    return sorted(seen, key=order)


def _failures(run: Run) -> str:
    if not run.failed:
        return ""
    lines = ["Cells that did not run:\n"]
    for cell in run.failed:
        first = (cell.failure or "").strip().splitlines()[:1] or [""]
        lines.append(f"- {LABELS[cell.target]} {cell.mode} c={cell.connections}: {first[0][:300]}")
    return "\n".join(lines) + "\n"


def _crosscheck_table(run: Run) -> str:
    if not run.crosschecks:
        return ""
    lines = [
        "| endpoint | batching | conns | generator | req/s | p50 ms | p99 ms | errors | 503 |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for check in run.crosschecks:
        label = f"| {ROUTES[check.target]} | {MODE_LABEL.get(check.mode, check.mode)} |"
        if (cell := run.cell(check.target, check.mode, check.connections)) and cell.result:
            w = cell.result
            lines.append(
                f"{label} {check.connections} | wrk | {w.rps:,.0f} | {_ms(w.p50_ms)} | "
                f"{_ms(w.p99_ms)} | {w.errors} | {w.overloaded} |"
            )
        if (r := check.result) is None:
            lines.append(f"{label} {check.connections} | hey | failed: {check.failure} | | | | |")
            continue
        lines.append(
            f"{label} {check.connections} | hey | {r.rps:,.0f} | {_ms(r.p50_ms)} | "
            f"{_ms(r.p99_ms)} | {r.errors} | {r.overloaded} |"
        )
    note = (
        "\nwrk drives all its connections from one thread, on cores it shares with the server: "
        "at this concurrency its p99 can include its own delays. hey runs the same cells from "
        "many goroutines; the two echo rows show how far the generators alone differ here. "
        "Errors both generators see on echo are the echo app's own. hey's 503s are counted apart "
        "without reading their Retry-After (tests/test_overload.py checks that every 503 carries "
        "one).\n"
    )
    return "\n".join(lines) + "\n" + note


def _crosscheck(run: Run, target: str) -> CrossCheck | None:
    return next((c for c in run.crosschecks if c.target == target), None)


# The setting


def _setting(run: Run) -> str:
    m, o, v = run.machine, run.options, run.machine["versions"]
    memory = f", {m['memory_gib']:.1f} GiB memory" if m.get("memory_gib") else ""
    versions = ", ".join(f"{name} {version}" for name, version in v.items())
    lines = [
        f"- Machine: {m['cores']} cores, {m['cpu']}{memory}, Linux {m['kernel']}.",
        f"- Versions: {versions}.",
        f"- Commit: {m['commit']}.",
        *_service_lines(run),
        *_echo_lines(run),
        f"- Load: wrk, {o.threads} thread{'s' if o.threads > 1 else ''}, `-c` connections as in "
        f"each row, {o.seconds:g} s measured after a {o.warmup:g} s warm-up that is not counted "
        f"and a {SETTLE_S:g} s pause, `--timeout {o.timeout_s:g}s`; client and server share the "
        "machine's cores.",
        *(
            [
                f"- Cross-check: hey at {CROSSCHECK_AT} connections, same seconds, warm-up and "
                "timeout, on echo and /reconstruct (batching on)."
            ]
            if run.crosschecks
            else []
        ),  # fmt: skip
        *_body_lines(run),
    ]
    return "\n".join(lines) + "\n"


def _service_lines(run: Run) -> list[str]:
    lines = []
    for mode, info in run.services.items():
        b = info.get("batching") or {}
        how = (
            f"at {run.options.url}, as it runs"
            if mode == EXTERNAL
            else "`python -m service`, one worker, AE_LOG_LEVEL=warning"
        )
        lines.append(
            f"- Service, batching {MODE_LABEL.get(mode, mode)}: {how}; model {info.get('name')} "
            f"{info.get('version')} on {info.get('device')}, max_batch_size "
            f"{b.get('max_batch_size')}, max_batch_delay_ms {b.get('max_batch_delay_ms')}, "
            f"max_queue {b.get('max_queue')}, torch threads {b.get('torch_threads')}."
        )
    return lines


def _echo_lines(run: Run) -> list[str]:
    if not any(cell.mode == ECHO for cell in run.cells):
        return []
    return [
        "- Echo: `python -m bench.echo_app`, a FastAPI endpoint returning the posted body, served "
        "with the service's uvicorn settings (uvloop, httptools, one worker, no access log)."
    ]


def _body_lines(run: Run) -> list[str]:
    png, emb = run.bodies.get("png"), run.bodies.get("embedding")
    lines = []
    if png:
        lines.append(
            f"- Bodies: /reconstruct, /encode and echo get one 28×28 digit PNG ({png.size} bytes) "
            "as a raw `image/png` body; the service answers /reconstruct with a PNG."
        )
    if emb:
        lines.append(
            f'- /decode gets `{{"embedding": [64 floats]}}` ({emb.size} bytes, the same '
            "digit's embedding) and answers with a PNG."
        )
    binary, json = run.bodies.get("oip-binary"), run.bodies.get("oip-json")
    if binary and json and any(cell.target.startswith("oip") for cell in run.cells):
        lines.append(
            "- OIP: `/v2/models/<model>/infer` on the same digit's pixels, UINT8 [1, 28, 28]: "
            f"binary ({binary.size} bytes, Inference-Header-Content-Length {binary.header_length}, "
            f"answered binary) and as JSON numbers ({json.size} bytes, answered as JSON)."
        )
    return lines


def _rerun() -> str:
    return (
        "```sh\n"
        "make bench                                   # everything, about 6 minutes\n"
        "python -m bench --only reconstruct,echo --concurrency 64 --seconds 5   # one quick look\n"
        "python -m bench --device cuda --only reconstruct,echo --append  # GPU cells, added below\n"
        "python -m bench --help\n"
        "```\n"
    )


# Formatting


def _mode_of(run: Run) -> str:
    return EXTERNAL if run.options.url else "on"


def _result(run: Run, target: str, mode: str, connections: int) -> WrkResult | None:
    cell = run.cell(target, mode, connections)
    return cell.result if cell else None


def _ok(cell: Cell | None) -> bool:
    return cell is not None and cell.result is not None


def _rps(cell: Cell | None) -> str:
    if cell is None or cell.result is None:
        return "–"
    return f"{cell.result.rps:,.0f}"


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"
