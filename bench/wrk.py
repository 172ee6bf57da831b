"""One wrk run against one URL, and what it measured (parsed from post.lua's JSON line)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("post.lua")
MARKER = "BENCH-JSON "


@dataclass(frozen=True, slots=True)
class Body:
    path: Path  # the file wrk posts
    content_type: str
    size: int
    header_length: int | None = None  # OIP binary tensors: Inference-Header-Content-Length


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int  # completed responses of any status
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    ok: int  # 2xx
    overloaded: int  # 503 with Retry-After
    other_status: int  # every other non-2xx
    socket_errors: int  # connect, read, write errors and timeouts
    timeouts: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        """What counts against the service: anything but 2xx or a 503 with Retry-After."""
        return self.other_status + self.socket_errors


class LoadGeneratorFailed(RuntimeError):
    """wrk or hey exited badly or printed no result."""


def command(
    url: str, body: Body, connections: int, seconds: float, threads: int, timeout_s: float
) -> list[str]:
    return [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s:g}s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(body.path),
        body.content_type,
        *([] if body.header_length is None else [str(body.header_length)]),
    ]


def run_wrk(
    url: str, body: Body, connections: int, seconds: float, threads: int = 1, timeout_s: float = 5
) -> WrkResult:
    argv = command(url, body, connections, seconds, threads, timeout_s)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        why = done.stderr.strip()[-500:]
        raise LoadGeneratorFailed(f"wrk exited with {done.returncode}: {why}")
    return parse_output(done.stdout)


def parse_output(stdout: str) -> WrkResult:
    lines = [line for line in stdout.splitlines() if line.startswith(MARKER)]
    if not lines:
        raise LoadGeneratorFailed(f"wrk printed no {MARKER.strip()} line:\n{stdout[-1000:]}")
    raw = json.loads(lines[-1][len(MARKER) :])
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1e3,
        p99_ms=raw["p99_us"] / 1e3,
        max_ms=raw["max_us"] / 1e3,
        ok=raw["ok"],
        overloaded=raw["overloaded"],
        other_status=raw["other_status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        timeouts=raw["timeout"],
    )
