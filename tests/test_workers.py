"""Several workers: each loads the model once, and /metrics on any of them counts them all."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from service.metrics import FLUSH_AFTER_S
from tests.support import ROOT, start_service

SEVEN = (ROOT / "docs" / "examples" / "seven.png").read_bytes()


@pytest.mark.slow
def test_two_workers_share_the_port_and_the_metrics(tmp_path: Path) -> None:
    with start_service(tmp_path, {"AE_WORKERS": "2"}) as service, service.client() as http:
        deadline = time.monotonic() + 60  # /readyz answered from one worker; wait for both
        while service.log().count("ready in") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        for _ in range(20):
            response = http.post("/encode", content=SEVEN, headers={"content-type": "image/png"})
            assert response.status_code == 200
        # The worker not scraped folds its figures into the shared files within FLUSH_AFTER_S.
        deadline = time.monotonic() + 10 * FLUSH_AFTER_S
        while (encoded := _encoded(metrics := http.get("/metrics").text)) < 20:
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
        log = service.log()
    workers = set(re.findall(r'ae_model_info\{[^}]*pid="(\d+)"', metrics))
    assert len(workers) == 2, metrics
    assert encoded == 20
    assert log.count("ready in") == 2  # one model load per worker


def _encoded(metrics: str) -> float:
    found = re.search(r'ae_requests_total\{route="/encode",status="200"\} (\S+)', metrics)
    return float(found.group(1)) if found else 0.0
