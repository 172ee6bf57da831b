"""Retries against a small real HTTP server on loopback that refuses its first attempts (503
with Retry-After, or a dropped connection) and then answers; the backoff policy on its own."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest
from digit_ae_client import AsyncClient, Client, Overloaded, Unreachable
from digit_ae_client._core import Attempts, Config, RetryPolicy
from digit_ae_client.calls import model

from tests.support import free_port

DIGIT = np.zeros((28, 28), dtype=np.uint8)
ENCODED = {
    "model": "mnist-ae",
    "model_version": "1",
    "embedding_dim": 64,
    "embeddings": [[0.5] * 64],
}


@dataclass
class Flaky:
    """Refuses the first `refuse` requests, then answers a fixed valid body per path."""

    refuse: int = 0
    how: str = "503"  # or "drop": close the connection without an answer
    retry_after: str = "0"
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.seen.append((path, headers, body))
            return len(self.seen)


def handler_for(flaky: Flaky) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def handle_one_request(self) -> None:
            if flaky.how == "drop" and len(flaky.seen) < flaky.refuse:
                flaky.attempt("dropped", {}, b"")
                self.close_connection = True  # not a byte of answer
                return
            super().handle_one_request()

        def do_GET(self) -> None:
            self._answer(b"")

        def do_POST(self) -> None:
            self._answer(self.rfile.read(int(self.headers.get("content-length", 0))))

        def _answer(self, body: bytes) -> None:
            n = flaky.attempt(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if n <= flaky.refuse or self.path == "/readyz":
                problem = {"type": "urn:digit-ae:problem:overloaded", "title": "Service overloaded",
                           "status": 503, "detail": f"attempt {n} refused",
                           "request_id": self.headers.get("x-request-id", "")}  # fmt: skip
                self._send(503, problem, "application/problem+json", flaky.retry_after)
            elif self.path.startswith("/encode"):
                self._send(200, ENCODED, "application/json")
            else:
                self._send(200, {"name": "flaky"}, "application/json")

        def _send(self, status: int, body: object, kind: str, retry_after: str = "") -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            if retry_after:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test reads `flaky.seen`, not a log

    return Handler


@pytest.fixture()
def flaky() -> Iterator[tuple[Flaky, str]]:
    state = Flaky()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_503_is_retried_until_it_succeeds(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.refuse = 2
    with Client(url, retries=3, api_key="secret") as ae:
        rows = ae.encode(DIGIT, request_id="retry-1")
    assert rows.shape == (1, 64)
    assert len(state.seen) == 3
    assert {headers["x-request-id"] for _, headers, _ in state.seen} == {"retry-1"}
    assert {headers["authorization"] for _, headers, _ in state.seen} == {"Bearer secret"}
    assert len({body for _, _, body in state.seen}) == 1  # the same request each time


def test_async_client_retries_the_same_way(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.refuse = 2

    async def call() -> np.ndarray:
        async with AsyncClient(url, retries=3) as ae:
            return await ae.encode([DIGIT])

    assert asyncio.run(call()).shape == (1, 64)
    assert len(state.seen) == 3


def test_dropped_connections_are_retried(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.refuse, state.how = 2, "drop"
    with Client(url, retries=2) as ae:
        assert ae.model() == {"name": "flaky"}
    assert [path for path, _, _ in state.seen] == ["dropped", "dropped", "/model"]


def test_503_after_the_last_retry_raises_overloaded(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.refuse = 10
    with Client(url, retries=2) as ae, pytest.raises(Overloaded) as caught:
        ae.model(request_id="still-busy")
    assert len(state.seen) == 3
    error = caught.value
    assert (error.status, error.request_id, error.retry_after) == (503, "still-busy", 0.0)
    assert error.detail == "attempt 3 refused"


def test_a_retry_after_beyond_the_budget_is_not_waited_for(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    state.refuse, state.retry_after = 10, "120"
    with Client(url, retries=5, retry_budget=30) as ae, pytest.raises(Overloaded) as caught:
        ae.model()
    assert len(state.seen) == 1
    assert caught.value.retry_after == 120


def test_not_ready_is_an_answer_not_a_retry(flaky: tuple[Flaky, str]) -> None:
    state, url = flaky
    with Client(url, retries=3) as ae:
        assert ae.ready() is False
    assert len(state.seen) == 1


def test_a_closed_port_is_unreachable_after_the_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, retries=2) as ae, pytest.raises(Unreachable) as caught:
        ae.model(request_id="nobody-home")
    assert caught.value.attempts == 3
    assert caught.value.request_id == "nobody-home"
    assert "cannot connect" in str(caught.value)

    async def call() -> None:
        async with AsyncClient(url, retries=1) as ae:
            await ae.ready()

    with pytest.raises(Unreachable, match="after 2 attempts"):
        asyncio.run(call())


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def attempts(retries: int = 3, budget: float = 30.0) -> tuple[Attempts, Clock]:
    config = Config("http://127.0.0.1:1", None, 5.0, RetryPolicy(retries, budget, 0.25, 8.0))
    clock = Clock()
    return Attempts(model(), config, "id", clock=clock, rng=random.Random(7)), clock


def busy(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(503, headers=headers)


def test_backoff_is_full_jitter_under_a_doubling_ceiling() -> None:
    tries, _ = attempts(retries=6, budget=1000)
    delays = [tries.after_response(busy()) for _ in range(6)]
    ceilings = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    assert all(d is not None and 0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert tries.after_response(busy()) is None  # the seventh refusal is final


def test_retry_after_is_a_floor_and_success_is_final() -> None:
    tries, _ = attempts()
    delay = tries.after_response(busy("2"))
    assert delay is not None and 2.0 <= delay <= 2.25
    assert tries.after_response(httpx.Response(200)) is None


def test_the_budget_bounds_the_retries() -> None:
    tries, clock = attempts(retries=10, budget=5.0)
    assert tries.after_response(busy("1")) is not None
    clock.now = 4.5
    assert tries.after_response(busy("1")) is None  # 4.5 s + 1 s would pass the 5 s budget


def test_connection_errors_back_off_then_raise_unreachable() -> None:
    tries, _ = attempts(retries=1)
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    assert 0 <= tries.after_error(refused) <= 0.25
    with pytest.raises(Unreachable, match="Connection refused .after 2 attempts"):
        tries.after_error(refused)


def test_a_read_timeout_is_not_retried() -> None:
    tries, _ = attempts(retries=3)
    with pytest.raises(Unreachable, match="no response from .* within 5 s"):
        tries.after_error(httpx.ReadTimeout("timed out"))
    assert tries.tries == 1
