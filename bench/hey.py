"""One hey run against one URL: the cross-check at the highest concurrency.

wrk drives every cell from one thread, on cores it shares with the server. hey drives the same
cells from many goroutines. At 256 connections the bench runs hey too, so that a reader can tell
the server's tail from one load generator's. hey reads no response headers: its 503s are
counted apart, on trust that they carry Retry-After (tests/test_overload.py checks that they do).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field

from bench.wrk import Body, LoadGeneratorFailed

_TOTAL = re.compile(r"^\s*Total:\s+([\d.]+) secs", re.M)
_PERCENTILE = re.compile(r"^\s*(\d+)% in ([\d.]+) secs", re.M)
_STATUS = re.compile(r"^\s*\[(\d{3})\]\s+(\d+) responses", re.M)
_ERRORS = re.compile(r"^\s*\[(\d+)\]\s+\S", re.M)


@dataclass(frozen=True, slots=True)
class HeyResult:
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int] = field(default_factory=dict)
    failed: int = 0  # requests with no response: timeouts, connection errors

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def overloaded(self) -> int:
        return self.statuses.get(503, 0)

    @property
    def errors(self) -> int:
        """Anything but 2xx or 503, and every request that got no response."""
        other = sum(n for code, n in self.statuses.items() if not 200 <= code < 300 and code != 503)
        return other + self.failed


def command(url: str, body: Body, connections: int, seconds: float, timeout_s: float) -> list[str]:
    return [
        "hey", "-c", str(connections), "-z", f"{max(1, round(seconds))}s",
        "-t", str(max(1, round(timeout_s))), "-m", "POST", "-D", str(body.path),
        "-T", body.content_type, url,
    ]  # fmt: skip


def run_hey(
    url: str, body: Body, connections: int, seconds: float, timeout_s: float = 5
) -> HeyResult:
    argv = command(url, body, connections, seconds, timeout_s)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        why = done.stderr.strip()[-500:]
        raise LoadGeneratorFailed(f"hey exited with {done.returncode}: {why}")
    return parse_output(done.stdout)


def parse_output(stdout: str) -> HeyResult:
    total = _TOTAL.search(stdout)
    if total is None:
        raise LoadGeneratorFailed(f"hey printed no summary:\n{stdout[-1000:]}")
    percentiles = {int(p): float(s) * 1000 for p, s in _PERCENTILE.findall(stdout)}
    statuses_text, _, errors_text = stdout.partition("Error distribution:")
    statuses = {int(code): int(n) for code, n in _STATUS.findall(statuses_text)}
    return HeyResult(
        seconds=float(total.group(1)),
        p50_ms=percentiles.get(50, 0.0),
        p99_ms=percentiles.get(99, 0.0),
        statuses=statuses,
        failed=sum(int(n) for n in _ERRORS.findall(errors_text)),
    )
