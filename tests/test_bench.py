"""The load benchmark's harness: wrk's result line is read right, the results file renders, and
one tiny real run (a second per cell) goes through end to end. No figure is judged here."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.hey import HeyResult, run_hey
from bench.hey import parse_output as parse_hey
from bench.payloads import write_bodies
from bench.report import render
from bench.run import Cell, CrossCheck, Options, Run, concurrencies
from bench.servers import start_echo
from bench.wrk import Body, WrkResult, parse_output, run_wrk
from service.fronts.oip.models import views
from service.fronts.oip.tensors import parse
from tests.support import MODEL_PATH, ROOT, require_program

WRK_STDOUT = """Running 8s test @ http://127.0.0.1:8000/reconstruct
  1 threads and 64 connections
BENCH-JSON {"requests": 24000, "duration_us": 8000000, "p50_us": 2500, "p99_us": 9100, \
"max_us": 15000, "ok": 23990, "overloaded": 6, "other_status": 4, "connect": 0, "read": 1, \
"write": 0, "timeout": 2}
"""

HEY_STDOUT = """
Summary:
  Total:	8.0031 secs
  Slowest:	2.7140 secs
  Fastest:	0.0021 secs
  Average:	0.1790 secs
  Requests/sec:	1430.4456

Latency distribution:
  10% in 0.0712 secs
  50% in 0.1570 secs
  99% in 0.8904 secs

Status code distribution:
  [200]	11433 responses
  [503]	12 responses
  [404]	3 responses

Error distribution:
  [5]	Post "http://127.0.0.1:8000/reconstruct": context deadline exceeded
  [2]	Post "http://127.0.0.1:8000/reconstruct": EOF
"""

MACHINE = {
    "cores": 2, "cpu": "Test CPU", "memory_gib": 8.0, "kernel": "6.1", "load_before": 0.1,
    "versions": {"python": "3.11", "torch": "2.x", "wrk": "4.1.0"}, "commit": "abc1234",
    "python_executable": sys.executable,
}  # fmt: skip


def result(rps: float, p50_ms: float = 1.0, p99_ms: float = 5.0, errors: int = 0) -> WrkResult:
    requests = int(rps * 8)
    return WrkResult(requests, 8.0, p50_ms, p99_ms, p99_ms * 2, requests - errors, 0, errors, 0, 0)


def test_wrk_result_line_is_parsed() -> None:
    r = parse_output(WRK_STDOUT)
    assert (r.requests, r.seconds, r.rps) == (24000, 8.0, 3000.0)
    assert (r.p50_ms, r.p99_ms, r.max_ms) == (2.5, 9.1, 15.0)
    assert (r.ok, r.overloaded, r.other_status) == (23990, 6, 4)
    assert (r.socket_errors, r.timeouts) == (3, 2)
    assert r.errors == 7  # 503s with Retry-After are counted apart, not as errors


def test_hey_summary_is_parsed() -> None:
    r = parse_hey(HEY_STDOUT)
    assert (r.seconds, r.p50_ms, r.p99_ms) == (8.0031, 157.0, 890.4)
    assert r.statuses == {200: 11433, 503: 12, 404: 3}
    assert (r.requests, r.overloaded, r.failed) == (11448, 12, 7)
    assert r.errors == 10  # the 404s and the requests without an answer; not the 503s


def test_crosscheck_renders_beside_wrk() -> None:
    run = Run(Options(concurrency=(64, 256)), machine=MACHINE, seconds=300, load_after=0.5)
    for target, mode in (("echo", "echo"), ("reconstruct", "on")):
        for c in (64, 256):
            run.cells.append(Cell(target, mode, c, result(3000, p99_ms=3400.0)))
    hey = HeyResult(8.0, 150.0, 620.0, {200: 12000})
    run.crosschecks = [
        CrossCheck("echo", "echo", 256, hey),
        CrossCheck("reconstruct", "on", 256, hey),
    ]
    text = render(run)
    assert "## Cross-check at c=256 with hey" in text
    assert "| /reconstruct | on | 256 | wrk | 3,000 | 1.00 | 3400 | 0 | 0 |" in text
    assert "| /reconstruct | on | 256 | hey | 1,500 | 150 | 620 | 0 | 0 |" in text
    assert (
        "| /reconstruct at c=256 under hey (cross-check): all answered, p99 | 0 errors, p99 < 1 s "
        "| 0 errors, 0 503s, p99 620 ms | pass |"
    ) in text


def test_results_file_renders_headline_and_tables() -> None:
    run = Run(Options(concurrency=(1, 64, 256)), machine=MACHINE, seconds=300, load_after=0.5)
    cells = {
        ("echo", "echo"): (3500, 0.9), ("reconstruct", "on"): (2450, 1.8),
        ("reconstruct", "off"): (600, 1.6), ("encode", "on"): (2000, 2.0),
    }  # fmt: skip
    for (target, mode), (rps, p50) in cells.items():
        for c in (1, 64, 256):
            run.cells.append(Cell(target, mode, c, result(rps, p50), peak_rss_mb=412.0))
    run.cells.append(Cell("decode", "on", 1, failure="wrk exited with 1: boom"))
    text = render(run)
    assert text.startswith("# Benchmark results\n")
    assert "| ≥ 60% | 70% (2,450 of 3,500 req/s) | pass |" in text
    assert (
        "| /reconstruct at c=64, batching on over off | ≥ 2× | 4.1× (2,450 vs 600 req/s) | pass |"
        in text
    )
    assert "+0.90 ms (1.80 vs 0.90 ms)" in text
    assert "| 412 MB | pass |" in text
    assert "| /echo | – | 3,500 | 3,500 | 3,500 |" in text
    assert (
        "| /reconstruct | off (AE_MAX_BATCH_SIZE=1) | 1 | 600 | 1.60 | 5.00 | 0 | 0 | 412 |" in text
    )
    assert "- /decode on c=1: wrk exited with 1: boom" in text
    assert "2 cores, Test CPU" in text and "Commit: abc1234" in text
    # echo's table row comes before the endpoints', batching on before off
    assert (
        text.index("| /echo | –")
        < text.index("| /reconstruct | on")
        < text.index("| /reconstruct | off")
    )


@pytest.fixture(scope="module")
def echo_and_body(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Body]]:
    """One echo server and a digit PNG to post, shared by the load generators' tests."""
    folder = tmp_path_factory.mktemp("echo")
    png = (ROOT / "service" / "static" / "samples" / "7.png").read_bytes()
    (folder / "digit.png").write_bytes(png)
    with start_echo(folder) as echo:
        yield echo.url, Body(folder / "digit.png", "image/png", len(png))


@pytest.mark.slow
def test_lua_script_counts_answers_by_status(echo_and_body: tuple[str, Body]) -> None:
    require_program("wrk")
    url, body = echo_and_body
    answered = run_wrk(f"{url}/echo", body, connections=2, seconds=1)
    missing = run_wrk(f"{url}/missing", body, connections=2, seconds=1)
    assert answered.requests > 0 and answered.ok == answered.requests
    assert answered.errors == 0
    assert missing.requests > 0 and missing.other_status == missing.requests
    assert missing.ok == 0 and missing.errors == missing.requests


@pytest.mark.slow
def test_hey_counts_answers_by_status(echo_and_body: tuple[str, Body]) -> None:
    require_program("hey")
    url, body = echo_and_body
    answered = run_hey(f"{url}/echo", body, connections=2, seconds=1)
    missing = run_hey(f"{url}/missing", body, connections=2, seconds=1)
    assert answered.requests > 0 and answered.statuses == {200: answered.requests}
    assert answered.errors == 0 and 0 < answered.p50_ms <= answered.p99_ms
    assert missing.requests > 0 and missing.errors == missing.statuses[404] == missing.requests


@pytest.mark.slow
def test_one_tiny_run_writes_the_results_file(tmp_path: Path) -> None:
    require_program("wrk")
    out, work = tmp_path / "RESULTS.md", tmp_path / "work"
    argv = [
        sys.executable, "-m", "bench", "--only", "reconstruct,echo", "--concurrency", "2",
        "--seconds", "1", "--warmup", "0", "--batching", "on", "--device", "cpu",
        "--model", str(MODEL_PATH), "--out", str(out), "--work", str(work),
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "| /echo | – | 2 |" in text
    assert "| /reconstruct | on | 2 |" in text
    assert "| /reconstruct at c=1" not in text  # no c=1 cell in this run: no such check
    raw = json.loads((work / "last-run.json").read_text())
    for cell in raw["cells"]:
        r = cell["result"]
        assert cell["failure"] is None and r["requests"] > 0
        assert r["ok"] == r["requests"] and r["other_status"] == r["socket_errors"] == 0
    assert raw["services"]["on"]["device"] == "cpu"
    assert (work / "service-on.log").exists()


def test_oip_cells_run_at_their_concurrencies_and_headline_their_share() -> None:
    options = Options(concurrency=(1, 16, 64, 256))
    assert concurrencies(options, "oip", "on") == (1, 64, 256)
    assert concurrencies(options, "oip-json", "on") == (64,)
    assert concurrencies(options, "oip", "off") == ()
    assert concurrencies(options, "reconstruct", "off") == (1, 16, 64, 256)
    run = Run(Options(concurrency=(64,)), machine=MACHINE, seconds=60, load_after=0.5)
    run.cells += [
        Cell("reconstruct", "on", 64, result(2000)), Cell("oip", "on", 64, result(1900)),
        Cell("oip-json", "on", 64, result(900)),
    ]  # fmt: skip
    text = render(run)
    assert (
        "| OIP binary infer at c=64, share of /reconstruct's req/s; errors and 503s | ≥ 0.9×, 0 "
        "| 0.95× (1,900 vs 2,000 req/s); 0 | pass |"
    ) in text
    assert "| /v2/models/{model}/infer (JSON) | on | 64 | 900 |" in text


def test_oip_bench_bodies_are_requests_the_service_parses(tmp_path: Path) -> None:
    bodies = write_bodies(tmp_path, None)
    view = views("mnist-ae", 64, 28, 64, 64)["mnist-ae"]
    binary = bodies["oip-binary"]
    parsed = parse(binary.path.read_bytes(), str(binary.header_length), view, 64)
    assert parsed.inputs["images"].values.shape == (1, 28, 28)  # type: ignore[union-attr]
    assert all(as_binary for _, as_binary in parsed.outputs)
    as_json = parse(bodies["oip-json"].path.read_bytes(), None, view, 64)
    assert np.array_equal(as_json.inputs["images"].values, parsed.inputs["images"].values)
