"""Log lines: AE_LOG_FORMAT=json makes every line a real server writes one JSON object, and the
access line (AE_ACCESS_LOG) carries the request's id, route, status, duration and model version."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.fronts.middleware import RequestContext
from service.logs import JsonFormatter, TextFormatter
from service.metrics import Metrics
from tests.support import ROOT, start_service, stop

SEVEN = (ROOT / "docs" / "examples" / "seven.png").read_bytes()
PNG = {"content-type": "image/png"}


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("service", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_the_time_level_logger_message_and_request_fields() -> None:
    record = _record(
        "%s took\n%d ms \u2028 é", "POST", 3, request_id="abc", route="/encode", status=200
    )
    line = JsonFormatter().format(record)
    assert line.isascii() and len(line.splitlines()) == 1
    parsed = json.loads(line)
    assert parsed["level"] == "WARNING" and parsed["logger"] == "service"
    assert parsed["message"] == "POST took\n3 ms \u2028 é"
    assert (parsed["request_id"], parsed["route"], parsed["status"]) == ("abc", "/encode", 200)
    stamp = datetime.fromisoformat(parsed["timestamp"])
    assert parsed["timestamp"].endswith("Z") and stamp.utcoffset() == timedelta(0)
    assert abs(stamp - datetime.fromtimestamp(record.created, UTC)) < timedelta(milliseconds=1)


def test_a_json_line_holds_the_traceback_as_a_field() -> None:
    try:
        raise ValueError("no good")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    parsed = json.loads(JsonFormatter().format(record))
    assert parsed["message"] == "failed"
    assert "Traceback" in parsed["exception"] and "ValueError: no good" in parsed["exception"]


def test_a_json_line_survives_arguments_that_do_not_fit_the_message() -> None:
    parsed = json.loads(JsonFormatter().format(_record("%d items", "many")))
    assert parsed["message"].startswith("%d items") and "'many'" in parsed["message"]


def test_a_text_line_appends_the_request_fields() -> None:
    record = _record("GET /x 404 0.4 ms", request_id="abc", route="unmatched", client=None)
    line = TextFormatter().format(record)
    assert line.endswith(" WARNING service: GET /x 404 0.4 ms request_id=abc route=unmatched")


UNCAUGHT = """
import threading, warnings
from service.logs import configure_logging
configure_logging("json", "info")
warnings.warn("a warning")
thread = threading.Thread(target=lambda: 1 / 0, name="worker-7")
thread.start()
thread.join()
raise RuntimeError("not caught")
"""


def test_warnings_and_uncaught_exceptions_are_json_lines_too() -> None:
    done = subprocess.run(
        [sys.executable, "-c", UNCAUGHT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and done.stdout == ""
    warned, in_thread, uncaught = (json.loads(line) for line in done.stderr.splitlines())
    assert (warned["logger"], warned["level"]) == ("py.warnings", "WARNING")
    assert "UserWarning: a warning" in warned["message"]
    assert in_thread["message"] == "uncaught ZeroDivisionError in worker-7"
    assert "Traceback" in in_thread["exception"]
    assert (uncaught["level"], uncaught["message"]) == ("CRITICAL", "uncaught RuntimeError")
    assert "RuntimeError: not caught" in uncaught["exception"]


def test_the_access_line_comes_from_the_request_context(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="service.access"):
        asyncio.run(_two_requests(access_log=True))
    first, second = caplog.records
    assert first.getMessage().startswith("GET /items/7 200 ")
    fields = vars(first)
    assert (fields["route"], fields["status"], fields["model_version"]) == (
        "/items/{item}",
        200,
        "v9",
    )
    assert fields["duration_ms"] > 0 and fields["request_id"]
    fields = vars(second)
    assert (fields["route"], fields["path"], fields["status"]) == ("unmatched", "/no%0Awhere", 404)
    text = TextFormatter().format(second)
    assert "GET /no%0Awhere 404 " in text and "route=unmatched model_version=v9" in text
    assert f"request_id={fields['request_id']}" in text


def test_no_access_line_when_the_access_log_is_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="service"):
        asyncio.run(_two_requests(access_log=False))
    assert [record for record in caplog.records if record.name.startswith("service")] == []


async def _two_requests(*, access_log: bool) -> None:
    api = FastAPI()
    api.get("/items/{item}")(lambda item: {"item": item})
    app = RequestContext(
        api, max_body_bytes=1024, body_timeout=1.0, metrics=Metrics(),
        model_version=lambda: "v9", access_log=access_log,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/items/7")).status_code == 200
        assert (await client.get("/no%0Awhere")).status_code == 404


@pytest.mark.parametrize("workers", ["1", pytest.param("2", marks=pytest.mark.slow)])
def test_every_line_of_a_json_session_is_json(tmp_path: Path, workers: str) -> None:
    env = {"AE_LOG_FORMAT": "json", "AE_ACCESS_LOG": "true", "AE_WORKERS": workers}
    with start_service(tmp_path, env) as service, service.client() as http:
        answers = [
            (http.post("/encode", content=SEVEN, headers=PNG), "POST", "/encode", 200),
            (http.post("/encode", content=b"not a png", headers=PNG), "POST", "/encode", 400),
            (http.get("/no/such/page"), "GET", "unmatched", 404),
            (http.get("/healthz", headers={"x-request-id": "probe-1"}), "GET", "/healthz", 200),
        ]
        assert stop(service.process) == 0
        lines = [json.loads(line) for line in service.log().splitlines()]
    for line in lines:
        assert {"timestamp", "level", "logger", "message"} <= line.keys(), line
        assert line["timestamp"].endswith("Z") and datetime.fromisoformat(line["timestamp"])
    assert sum(line["message"].startswith("ready in") for line in lines) == int(workers)
    assert any(line["logger"] == "uvicorn.error" for line in lines)
    access = [line for line in lines if line["logger"] == "service.access"]
    by_id = {line["request_id"]: line for line in access}
    assert len(by_id) == len(access)  # one line a request
    for response, method, route, status in answers:
        assert response.status_code == status
        _assert_access_line(by_id[response.headers["x-request-id"]], response, method, route)
    assert by_id["probe-1"]["path"] == "/healthz"


def _assert_access_line(
    line: dict[str, Any], response: httpx.Response, method: str, route: str
) -> None:
    assert line["level"] == "INFO"
    assert (line["method"], line["route"], line["status"]) == (
        method, route, response.status_code
    )  # fmt: skip
    assert line["path"] == response.request.url.raw_path.decode()
    assert line["model_version"] == response.headers["x-model-version"]
    assert 0 < line["duration_ms"] < 30_000
    assert line["client"].startswith("127.0.0.1:")
