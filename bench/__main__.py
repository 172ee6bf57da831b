"""Run the load benchmark and write its results: `python -m bench` (what `make bench` runs).

python -m bench                                     # the full table, about 6 minutes
python -m bench --only reconstruct,echo --concurrency 64 --seconds 5
python -m bench --device cuda --only reconstruct,echo --append   # a GPU section
python -m bench --url http://127.0.0.1:8000 --only reconstruct   # a service already up
python -m bench --only drawings --batching on    # big canvases, and digits beside them
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

from bench.report import render
from bench.run import DRAWINGS, MODES, ROUTES, Options, Run, bench, planned_seconds

HERE = Path(__file__).resolve().parent


def _names(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{what}: choose from {', '.join(allowed)}")
    return names


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("each count must be at least 1")
    return counts


def parse_args(argv: list[str] | None) -> tuple[Options, Path, bool]:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 1)[1],
    )  # fmt: skip
    d = Options()
    p.add_argument(
        "--only",
        type=lambda t: _names(t, (*ROUTES, DRAWINGS), "--only"),
        default=d.targets,
        help="targets, comma-separated (default: %(default)s)",
    )
    p.add_argument(
        "--concurrency",
        type=_counts,
        default=d.concurrency,
        help="wrk connections per cell, comma-separated (default: %(default)s)",
    )
    p.add_argument(
        "--batching",
        type=lambda t: _names(t, tuple(MODES), "--batching"),
        default=d.modes,
        help="service modes: on (defaults), off "
        "(AE_MAX_BATCH_SIZE=1), comma-separated (default: %(default)s)",
    )
    p.add_argument(
        "--seconds",
        type=float,
        default=d.seconds,
        help="measured seconds per cell (default: %(default)s)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=d.warmup,
        help="uncounted seconds before each cell, 0 for none (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=d.threads,
        help="wrk threads; they share the cores with the server (default: %(default)s)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=d.timeout_s,
        help="wrk's per-request timeout in seconds (default: %(default)s)",
    )
    p.add_argument(
        "--no-crosscheck",
        action="store_true",
        help="skip the hey runs that cross-check wrk at 256 connections",
    )
    p.add_argument("--device", help="AE_DEVICE for the service (default: the service's own)")
    p.add_argument("--model", type=Path, help="AE_MODEL_PATH (default: the service's own)")
    p.add_argument("--url", help="bench a service already running there instead of starting one")
    p.add_argument(
        "--out",
        type=Path,
        default=HERE / "RESULTS.md",
        help="the results file (default: bench/RESULTS.md)",
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="add this run as a section at the end of --out instead of replacing it",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=HERE / "out",
        help="server logs, request bodies, raw results (default: bench/out)",
    )
    a = p.parse_args(argv)
    options = Options(
        targets=a.only, concurrency=a.concurrency, modes=a.batching, seconds=a.seconds,
        warmup=a.warmup, threads=a.threads, timeout_s=a.timeout, device=a.device, model=a.model,
        url=a.url, work=a.work, crosscheck=not a.no_crosscheck,
    )  # fmt: skip
    return options, a.out, a.append


def write(run: Run, out: Path, append: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if append and out.exists():
        with out.open("a") as f:
            f.write("\n" + render(run, level=2))
    else:
        out.write_text(render(run))
    raw = {"options": asdict(run.options), "machine": run.machine, "services": run.services,
           "cells": [asdict(cell) for cell in run.cells],
           "crosschecks": [asdict(check) for check in run.crosschecks],
           "drawings": asdict(run.canvases) if run.canvases else None,
           "seconds": run.seconds}  # fmt: skip
    run.options.work.mkdir(parents=True, exist_ok=True)
    (run.options.work / "last-run.json").write_text(json.dumps(raw, indent=1, default=str))


def main(argv: list[str] | None = None) -> int:
    options, out, append = parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: run `sudo bash scripts/install-system-deps.sh`", file=sys.stderr
        )
        return 2
    print(f"bench: about {planned_seconds(options) / 60:.1f} min of load, plus start-ups",
          file=sys.stderr)  # fmt: skip
    run = bench(options)
    write(run, out, append)
    print(f"bench: wrote {out} in {run.seconds / 60:.1f} min", file=sys.stderr)
    for cell in run.failed:
        print(f"bench: {cell.target} {cell.mode} c={cell.connections} failed", file=sys.stderr)
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main())
