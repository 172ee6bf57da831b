"""The processes under load, each a subprocess on a free loopback port, and their peak memory.

`python -m service` is started with its own AE_* settings and AE_LOG_LEVEL=warning; the echo
app with the same uvicorn settings. Both are stopped with SIGTERM (SIGKILL if they hang).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


class StartFailed(RuntimeError):
    """A server exited or never became ready; the message ends with its log."""


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes] | None  # None: a service already running (--url)
    log_path: Path | None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(port: int, overrides: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AE_HOST="127.0.0.1", AE_PORT=str(port), AE_LOG_LEVEL="warning")
    env.update(PYTHONUNBUFFERED="1", **overrides)
    return env


@contextlib.contextmanager
def serving(
    name: str, argv: list[str], env: dict[str, str], port: int, logs: Path
) -> Iterator[Server]:
    """Run `argv` until the block ends; ready once GET /readyz answers 200."""
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(process)


def start_service(
    name: str, overrides: Mapping[str, str], logs: Path
) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    argv = [sys.executable, "-m", "service"]
    return serving(name, argv, service_env(port, overrides), port, logs)


def start_echo(logs: Path) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.echo_app", "--port", str(port)]
    return serving("echo", argv, {**os.environ, "PYTHONUNBUFFERED": "1"}, port, logs)


def wait_ready(server: Server, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise StartFailed(f"{server.name} exited before it was ready:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise StartFailed(f"{server.name} not ready after {timeout:g} s:\n{server.log_tail()}")


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class PeakRSS:
    """Peak resident memory of one process over a block, in MB.

    The kernel's high-water mark (VmHWM) is reset at the start where /proc allows it; a
    sampler of VmRSS every 100 ms covers the case where it does not.
    """

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak_kb = 0
        self._reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRSS:
        if self.pid is not None:
            with contextlib.suppress(OSError):
                Path(f"/proc/{self.pid}/clear_refs").write_text("5")
                self._reset = True
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pid is None:
            return
        self._stop.set()
        self._thread.join(5)
        if self._reset:
            self.peak_kb = max(self.peak_kb, _status_kb(self.pid, "VmHWM"))

    @property
    def mb(self) -> float | None:
        return self.peak_kb / 1024 if self.peak_kb else None

    def _sample(self) -> None:
        assert self.pid is not None
        while not self._stop.wait(0.1):
            self.peak_kb = max(self.peak_kb, _status_kb(self.pid, "VmRSS"))


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0
