"""Replicas behind nginx, as docker-compose.yml runs them, on loopback without containers.

Two `python -m service` processes and Debian's nginx with deploy/nginx.conf: a client posting
digits through nginx sees no failure while one replica is killed and later started again.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from tests.support import Service, free_port, start_service, stop, wait_ready
from tests.topology import nginx_command, run_nginx, served_by, write_nginx_conf

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def digit_png() -> bytes:
    """A hand-drawn-looking zero: light ink on black, 28×28, as MNIST draws it."""
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).ellipse((8, 5, 20, 23), outline=255, width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Load:
    """Client threads posting /reconstruct through nginx until told to stop (bounded anyway).

    Each thread pauses between requests: there are always requests in flight, yet the cores
    stay free enough for a replica to start again while the load goes on.
    """

    url: str
    body: bytes
    threads: int = 4
    pause: float = 0.01
    max_requests: int = 50_000
    done: int = 0
    failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _claim(self) -> bool:
        with self._lock:
            if self._stop.is_set() or self.done >= self.max_requests:
                return False
            self.done += 1
            return True

    def _post(self, client: httpx.Client) -> str | None:
        request_id = uuid.uuid4().hex
        try:
            response = client.post(
                "/reconstruct",
                content=self.body,
                headers={"Content-Type": "image/png", "X-Request-ID": request_id},
            )
        except httpx.HTTPError as error:
            return f"{request_id}: {error!r}"
        if response.status_code != 200 or not response.content.startswith(PNG_SIGNATURE):
            return f"{request_id}: {response.status_code} {response.text[:200]!r}"
        if response.headers.get("x-request-id") != request_id:
            return f"{request_id}: came back as {response.headers.get('x-request-id')!r}"
        return None

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while self._claim():
                failure = self._post(client)
                if failure:
                    with self._lock:
                        self.failures.append(failure)
                self._stop.wait(self.pause)

    @contextlib.contextmanager
    def running(self) -> Iterator[Load]:
        self._workers = [threading.Thread(target=self._run) for _ in range(self.threads)]
        for worker in self._workers:
            worker.start()
        try:
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop sending and wait for the requests in flight."""
        self._stop.set()
        for worker in self._workers:
            worker.join(60)

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        """Block until `count` requests have been sent (bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        while self.done < count:
            if time.monotonic() > deadline or self._stop.is_set():
                raise AssertionError(f"load stalled at {self.done} of {count} requests")
            time.sleep(0.02)


def ports_serving(access_log: Path, offset: int = 0) -> set[int]:
    return {
        int(addr.rsplit(":", 1)[1])
        for addr, status in served_by(access_log, offset)
        if status == "200"
    }


def wait_served_by(access_log: Path, port: int, offset: int, timeout: float = 30.0) -> None:
    """Block until the replica on `port` has answered a request logged after `offset`."""
    deadline = time.monotonic() + timeout
    while port not in ports_serving(access_log, offset):
        if time.monotonic() > deadline:
            raise AssertionError(f"the replica on port {port} served nothing in {timeout} s")
        time.sleep(0.1)


@contextlib.contextmanager
def restarted(tmp_path: Path, replica: Service) -> Iterator[subprocess.Popen[bytes]]:
    """The same replica started again on its old port, as a restart policy would."""
    with start_service(tmp_path, {"AE_PORT": str(replica.port)}, wait=False) as again:
        wait_ready(replica.url, again.process, timeout=120)
        yield again.process


def test_nginx_accepts_the_loopback_config(tmp_path: Path) -> None:
    conf = write_nginx_conf(tmp_path, free_port(), [free_port(), free_port()])

    result = subprocess.run(
        [*nginx_command(conf), "-t"], capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.slow
def test_no_request_fails_while_a_replica_dies_and_comes_back(tmp_path: Path) -> None:
    """Killed, started again, then stopped gently: clients through nginx never see it."""
    with (
        start_service(tmp_path, wait=False) as first,
        start_service(tmp_path, wait=False) as second,
    ):
        for replica in (first, second):  # both start at once, as compose starts them
            wait_ready(replica.url, replica.process)
        with (
            run_nginx(tmp_path / "nginx", [first.port, second.port]) as nginx,
            Load(nginx.url, digit_png()).running() as load,
        ):
            load.wait_for(60)
            assert ports_serving(nginx.access_log) == {first.port, second.port}

            first.process.kill()  # SIGKILL: no draining, requests in flight just break
            first.process.wait(10)
            load.wait_for(load.done + 120)

            offset = nginx.access_log.stat().st_size
            with restarted(tmp_path, first):
                wait_served_by(nginx.access_log, first.port, offset)
                load.wait_for(load.done + 60)

                # SIGTERM, as `docker stop` or a rolling update sends: the replica drains
                # (its 503s are retried elsewhere) and exits cleanly, still under load.
                assert stop(second.process, timeout=40) == 0
                load.wait_for(load.done + 60)
                load.stop()  # before the last replica is stopped

    assert load.failures == []
    assert load.done >= 300
