"""Overload against real uvicorn: a burst far beyond capacity is shed with fast 503s while the
admitted requests complete and the probes keep answering; a request that waits longer than
AE_REQUEST_TIMEOUT gets a 504 and costs no batch slot.

Both services run the slow test model (tests/model_files.py), so capacity is known: a decode
request carries in its first value how many rounds of work its batch does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.model_files import rounds_for, slow_decode_body, write_slow_model
from tests.scrape import metric
from tests.support import Service, start_service, wait_ready

BURST = 1000
MAX_QUEUE = 32
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Service]]:
    """Two services started side by side: one that sheds load, one with a short timeout."""
    folder = tmp_path_factory.mktemp("overload")
    model = write_slow_model(folder / "slow.pt")
    common = {"AE_MODEL_PATH": str(model), "AE_TORCH_THREADS": "1", "AE_SHUTDOWN_DRAIN": "0"}
    envs = {
        "shed": {**common, "AE_MAX_QUEUE": str(MAX_QUEUE), "AE_MAX_BATCH_SIZE": "8",
                 "AE_REQUEST_TIMEOUT": "300"},
        "timeout": {**common, "AE_REQUEST_TIMEOUT": "1"},
    }  # fmt: skip
    with contextlib.ExitStack() as stack:
        running = {
            name: stack.enter_context(start_service(folder, env, wait=False))
            for name, env in envs.items()
        }
        for service in running.values():
            wait_ready(service.url, service.process, timeout=180)
        yield running


class Prober:
    """Polls the probes from a thread of its own until stopped; records every status."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: dict[str, Counter[int | str]] = {
            p: Counter() for p in ("/healthz", "/readyz", "/metrics")
        }
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def __enter__(self) -> Prober:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(120)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for _ in range(10_000):
                for path, seen in self.statuses.items():
                    try:
                        seen[client.get(path).status_code] += 1
                    except httpx.HTTPError as exc:
                        seen[type(exc).__name__] += 1
                if self.stopped.wait(0.05):
                    return


async def burst(url: str, body: dict[str, list[float]]) -> list[httpx.Response | str]:
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=300) as client:

        async def one() -> httpx.Response | str:
            try:
                return await client.post("/decode", json=body)
            except httpx.HTTPError as exc:
                return repr(exc)

        return list(await asyncio.gather(*(one() for _ in range(BURST))))


def test_a_burst_beyond_capacity_is_shed_and_probes_answer(services: dict[str, Service]) -> None:
    service = services["shed"]
    with Prober(service.url) as prober:
        answers = asyncio.run(burst(service.url, slow_decode_body(rounds_for(0.02))))
    failures = [a for a in answers if isinstance(a, str)]
    assert failures == []
    responses = [a for a in answers if not isinstance(a, str)]
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) == {200, 503}, statuses
    assert statuses[200] >= MAX_QUEUE  # the first MAX_QUEUE always find room
    for response in responses:
        if response.status_code == 200:
            assert response.headers["content-type"] == "image/png"
        else:
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["type"] == "urn:digit-ae:problem:overloaded"
            assert int(response.headers["retry-after"]) >= 1
    for path, seen in prober.statuses.items():
        assert set(seen) == {200}, (path, seen)
    with service.client() as client:
        assert client.get("/readyz").status_code == 200
        assert client.get("/healthz").status_code == 200
        shed = metric(client, "ae_requests_total", route="/decode", status="503")
        assert shed == statuses[503]


def test_a_request_waiting_too_long_gets_504_and_uses_no_slot(
    services: dict[str, Service],
) -> None:
    service = services["timeout"]
    with httpx.Client(base_url=service.url, timeout=120) as client:
        batches = metric(client, "ae_batch_size_count", method="decode")
        items = metric(client, "ae_batch_size_sum", method="decode")
        slow: list[httpx.Response] = []
        rounds = rounds_for(8.0)
        thread = threading.Thread(
            target=lambda: slow.append(client.post("/decode", json=slow_decode_body(rounds)))
        )
        thread.start()
        # The slow batch keeps the model busy for seconds after its own 504 at one second, so
        # either sign that it got there will do: a busy machine may scrape too late to see it.
        deadline = time.monotonic() + 60
        while not slow and metric(client, "ae_in_flight_requests") < 2:  # slow one + scrape
            assert time.monotonic() < deadline, "the slow request never arrived"
            time.sleep(0.05)
        waiting = asyncio.run(_concurrent_decodes(service.url, 5))
        for response in waiting:
            assert response.status_code == 504, response.text
            assert response.headers["content-type"] == PROBLEM
            assert "AE_REQUEST_TIMEOUT" in response.json()["detail"]
        thread.join(120)
        assert slow[0].status_code == 504  # its batch runs on, but nobody waits for it

        served = 0
        for _ in range(120):  # until the slow batch is done and the model answers again
            answer = client.post("/decode", json=slow_decode_body(0))
            if answer.status_code == 200:
                served += 1
                break
            assert answer.status_code == 504
        assert served == 1
        # Only the slow batch and the last request reached the model: one item each.
        assert metric(client, "ae_batch_size_count", method="decode") == batches + 2
        assert metric(client, "ae_batch_size_sum", method="decode") == items + 2
        assert client.get("/readyz").status_code == 200


async def _concurrent_decodes(url: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        calls = (client.post("/decode", json=slow_decode_body(0)) for _ in range(count))
        return list(await asyncio.gather(*calls))
