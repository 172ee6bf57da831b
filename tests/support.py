"""Real parts for tests: a uvicorn subprocess on a loopback port, free ports, Debian programs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL_PATH = ROOT / "models" / "mnist-ae.pt"
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_program(name: str) -> str:
    """The program's path; skips the test with a hint, or fails in CI where it must exist."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed: run `sudo bash scripts/install-system-deps.sh`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Service:
    """A running `python -m service` process."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: object) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, **kwargs)  # type: ignore[arg-type]


def service_env(port: int, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AE_")}
    env.update(
        AE_HOST="127.0.0.1",
        AE_PORT=str(port),
        AE_MODEL_PATH=str(MODEL_PATH),
        AE_DEVICE="cpu",
        AE_LOG_LEVEL="info",
        AE_SHUTDOWN_DRAIN="0",  # tests that need the drain set it themselves
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides or {})
    return env


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"service at {url} not ready after {timeout} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


@contextlib.contextmanager
def start_service(
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    ready_timeout: float = 60.0,
    wait: bool = True,
) -> Iterator[Service]:
    """Run `python -m service` on a free loopback port until the block ends."""
    port = free_port()
    log_path = tmp_path / f"service-{port}.log"
    full_env = service_env(port, env)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    service = Service(f"http://127.0.0.1:{port}", port, process, log_path, full_env)
    try:
        if wait:
            wait_ready(service.url, process, ready_timeout)
        yield service
    finally:
        stop(process)
