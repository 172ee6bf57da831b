"""Big drawings: a phone canvas's `/reconstruct` at one client, by canvas size, and 32 clients
posting 28x28 digits while 8 post 1080x1080 canvases, against the same 32 alone.

The canvas is what a phone's drawing app sends: white RGB, a thick dark stroke (a 7), about
8 KB as PNG at 1080x1080. The mixed cell runs two wrk processes at once, one per body, for the
same seconds; the digits' latency distribution is the digit wrk's own.
"""

from __future__ import annotations

import io
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from bench.wrk import Body, LoadGeneratorFailed, WrkResult, command, parse_output, run_wrk

CANVAS_SIDES = (140, 280, 560, 1080)  # one client each
MIXED_SIDE = 1080
DIGIT_CLIENTS, CANVAS_CLIENTS = 32, 8
TARGET_CANVAS_P50_MS = 8.0  # the 1080x1080 canvas, one client
TARGET_MIXED_P99 = 2.0  # the digits' p99 beside the canvases, over their p99 alone


@dataclass
class Drawings:
    canvas: dict[int, WrkResult] = field(default_factory=dict)  # side -> one client's cell
    digits_alone: WrkResult | None = None
    digits_mixed: WrkResult | None = None
    canvases_mixed: WrkResult | None = None
    failure: str | None = None


def canvas_png(side: int) -> bytes:
    """A white RGB canvas with a dark 7 drawn in a stroke a tenth of its side wide."""
    image = Image.new("RGB", (side, side), (255, 255, 255))
    unit = side / 28
    stroke = [(7 * unit, 7 * unit), (21 * unit, 7 * unit), (12 * unit, 22 * unit)]
    ImageDraw.Draw(image).line(
        stroke, fill=(20, 20, 30), width=max(1, round(2.5 * unit)), joint="curve"
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def planned_seconds(seconds: float, warmup: float, settle: float) -> float:
    cells = len(CANVAS_SIDES) + 2  # the digits alone, then beside the canvases
    return cells * (seconds + warmup + settle + 0.5)


def measure(url: str, digit: Body, options: Any, settle_s: float) -> Drawings:
    """The cells against the service at `url` (its root); `options` is the bench's Options."""
    out, o = Drawings(), options
    endpoint = f"{url}/reconstruct"
    bodies = {side: _body(o.work, side) for side in CANVAS_SIDES}
    try:
        for side, body in bodies.items():
            _warm_up(endpoint, body, 1, o)
            out.canvas[side] = run_wrk(endpoint, body, 1, o.seconds, 1, o.timeout_s)
            time.sleep(settle_s)
        _warm_up(endpoint, digit, DIGIT_CLIENTS, o)
        time.sleep(settle_s)
        out.digits_alone = run_wrk(endpoint, digit, DIGIT_CLIENTS, o.seconds, 1, o.timeout_s)
        time.sleep(settle_s)
        out.digits_mixed, out.canvases_mixed = _together(
            endpoint, (digit, DIGIT_CLIENTS), (bodies[MIXED_SIDE], CANVAS_CLIENTS), o
        )
    except (LoadGeneratorFailed, OSError, subprocess.TimeoutExpired) as exc:
        out.failure = str(exc)
    return out


def _body(folder: Path, side: int) -> Body:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"canvas-{side}.png"
    data = canvas_png(side)
    path.write_bytes(data)
    return Body(path, "image/png", len(data))


def _warm_up(url: str, body: Body, connections: int, o: Any) -> None:
    if o.warmup > 0:
        run_wrk(url, body, connections, o.warmup, 1, o.timeout_s)


def _together(
    url: str, first: tuple[Body, int], second: tuple[Body, int], o: Any
) -> tuple[WrkResult, WrkResult]:
    """Two wrk processes over the same seconds, each with its own body and connections."""
    runs = [
        subprocess.Popen(
            command(url, body, conns, o.seconds, 1, o.timeout_s),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for body, conns in (first, second)
    ]
    outputs = [run.communicate(timeout=o.seconds + 60) for run in runs]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        if run.returncode != 0:
            raise LoadGeneratorFailed(f"wrk exited with {run.returncode}: {stderr[-500:]}")
    return parse_output(outputs[0][0]), parse_output(outputs[1][0])


def headline(d: Drawings) -> list[tuple[str, str, str, bool]]:
    """(what, target, measured, passed) rows for the report's headline."""
    rows = []
    if (canvas := d.canvas.get(MIXED_SIDE)) is not None:
        rows.append((
            f"/reconstruct of a {MIXED_SIDE}x{MIXED_SIDE} canvas, one client, p50",
            f"≤ {TARGET_CANVAS_P50_MS:g} ms", f"{canvas.p50_ms:.2f} ms",
            canvas.p50_ms <= TARGET_CANVAS_P50_MS and canvas.errors == 0,
        ))  # fmt: skip
    alone, mixed = d.digits_alone, d.digits_mixed
    if alone is not None and mixed is not None and alone.p99_ms > 0:
        ratio = mixed.p99_ms / alone.p99_ms
        rows.append((
            f"{DIGIT_CLIENTS} clients' 28x28 digits beside {CANVAS_CLIENTS} posting canvases, "
            "p99 over alone", f"≤ {TARGET_MIXED_P99:g}×",
            f"{ratio:.2f}× ({mixed.p99_ms:.1f} vs {alone.p99_ms:.1f} ms)",
            ratio <= TARGET_MIXED_P99 and mixed.errors == 0,
        ))  # fmt: skip
    return rows


def table(d: Drawings) -> str:
    lines = [
        "| body | clients | beside | req/s | p50 ms | p99 ms | errors | 503 |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    cells: list[tuple[str, int, str, WrkResult | None]] = [
        (f"{side}x{side} canvas", 1, "–", r) for side, r in d.canvas.items()
    ]
    cells += [
        ("28x28 digit", DIGIT_CLIENTS, "–", d.digits_alone),
        ("28x28 digit", DIGIT_CLIENTS, f"{CANVAS_CLIENTS} canvases", d.digits_mixed),
        (f"{MIXED_SIDE}x{MIXED_SIDE} canvas", CANVAS_CLIENTS, f"{DIGIT_CLIENTS} digits",
         d.canvases_mixed),
    ]  # fmt: skip
    for body, clients, beside, r in cells:
        if r is None:
            continue
        lines.append(
            f"| {body} | {clients} | {beside} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.errors} | {r.overloaded} |"
        )
    failed = f"\nThese cells stopped: {d.failure.splitlines()[0][:300]}\n" if d.failure else ""
    note = (
        "\nAll on `/reconstruct`, batching on. The canvas: white RGB with a dark 7 drawn a "
        "tenth of its side wide (bench/drawings.py); the mixed row's two loads are two wrk "
        "processes over the same seconds.\n"
    )
    return "\n".join(lines) + "\n" + failed + note
