"""Graceful shutdown against real uvicorn: on SIGTERM under load, readiness turns 503 first,
every request already taken completes, new ones are refused cleanly, and the process exits 0.
Under a load generator's closed loop on kept-alive connections, every request the server
accepted gets an answer: no resets, nothing unanswered."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.model_files import rounds_for, slow_decode_body, write_slow_model
from tests.scrape import metric
from tests.support import ROOT, require_program, start_service

TAKEN = 6  # requests in the service when SIGTERM arrives
DRAIN_S = 3
PROBLEM = "application/problem+json"


class Late:
    """Sends new requests from a thread until the service is gone; records what came back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[int | str] = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        for _ in range(400):
            try:
                with httpx.Client(base_url=self.url, timeout=60) as client:
                    response = client.post("/decode", json=slow_decode_body(0))
                self.answers.append(response.status_code)
                if response.status_code == 503:
                    assert response.headers["content-type"] == PROBLEM
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                self.answers.append(type(exc).__name__)
                if isinstance(exc, httpx.ConnectError):
                    return  # the port is closed: the server has stopped listening
            time.sleep(0.05)


def test_sigterm_under_load_drains_and_exits_zero(tmp_path: Path) -> None:
    env = {
        "AE_MODEL_PATH": str(write_slow_model(tmp_path / "slow.pt")),
        "AE_TORCH_THREADS": "1",
        "AE_MAX_BATCH_SIZE": "1",  # one request per batch: most of them wait in the queue
        "AE_REQUEST_TIMEOUT": "120",
        "AE_SHUTDOWN_DRAIN": str(DRAIN_S),
        "AE_SHUTDOWN_TIMEOUT": "120",
    }
    with start_service(tmp_path, env, ready_timeout=180) as service:
        client = httpx.Client(base_url=service.url, timeout=60)
        taken: list[int] = []
        body = slow_decode_body(rounds_for(1.0))  # TAKEN of them outlast the drain

        def send() -> None:
            with httpx.Client(base_url=service.url, timeout=180) as own:
                taken.append(own.post("/decode", json=body).status_code)

        senders = [threading.Thread(target=send) for _ in range(TAKEN)]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 60
        while metric(client, "ae_in_flight_requests") < TAKEN + 1:  # + this scrape
            assert time.monotonic() < deadline, "the requests never all arrived"
            time.sleep(0.05)

        service.process.send_signal(signal.SIGTERM)
        readiness = _first_not_ready(client)
        assert readiness.headers["content-type"] == PROBLEM
        assert "shutting down" in readiness.json()["detail"]
        assert client.get("/healthz").status_code == 200  # alive while draining

        refused = client.post("/decode", json=slow_decode_body(0))
        assert refused.status_code == 503
        assert refused.headers["content-type"] == PROBLEM
        assert refused.headers["connection"] == "close"
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["type"] == "urn:digit-ae:problem:not-ready"
        client.close()

        late = Late(service.url)
        late.thread.start()
        for sender in senders:
            sender.join(180)
        assert taken == [200] * TAKEN
        assert service.process.wait(120) == 0
        late.thread.join(60)
        assert not late.thread.is_alive()
        assert set(late.answers) <= {503, "ConnectError", "RemoteProtocolError", "ReadError"}
        log = service.log()
        assert "SIGTERM: not ready" in log and "stopped" in log
        assert "Traceback" not in log


def _first_not_ready(client: httpx.Client) -> httpx.Response:
    for _ in range(600):
        response = client.get("/readyz")
        if response.status_code != 200:
            assert response.status_code == 503
            return response
        time.sleep(0.01)
    raise AssertionError("/readyz never turned 503 after SIGTERM")


def test_sigterm_under_keep_alive_load_answers_every_request_it_accepted(tmp_path: Path) -> None:
    hey = require_program("hey")
    env = {"AE_SHUTDOWN_DRAIN": "0.5", "AE_SHUTDOWN_TIMEOUT": "10"}
    digit = ROOT / "docs" / "examples" / "seven.png"
    with start_service(tmp_path, env) as service:
        load = subprocess.Popen(
            [hey, "-z", "60s", "-c", "16", "-m", "POST", "-T", "image/png", "-D", str(digit),
             f"{service.url}/reconstruct"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            time.sleep(1.0)  # a closed loop on 16 kept-alive connections, in full swing
            service.process.send_signal(signal.SIGTERM)
            assert service.process.wait(60) == 0
            time.sleep(0.3)  # every client has met the closed port
            load.send_signal(signal.SIGINT)  # hey stops and reports
            report = load.communicate(timeout=60)[0].decode()
        finally:
            load.kill()
    statuses, errors = _hey_report(report)
    assert statuses.get(200, 0) > 0 and statuses.get(503, 0) > 0, report  # before and during
    # After the listener closed, connecting is refused; nothing else fails: no reset, no
    # request read and left unanswered, no timeout.
    assert all(error.endswith("connect: connection refused") for error in errors), report


def _hey_report(report: str) -> tuple[dict[int, int], list[str]]:
    """hey's status code counts, and its distinct errors."""
    answers, _, failures = report.partition("Error distribution:")
    found = re.findall(r"\[(\d{3})\]\s+(\d+) responses", answers)
    return {int(code): int(count) for code, count in found}, re.findall(
        r"^\s+\[\d+\]\s+(.+)$", failures, re.M
    )
