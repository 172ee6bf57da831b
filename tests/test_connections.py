"""The service's HTTP protocol marks a request whose whole body the server already holds, so
that the body deadline (middleware.py) needs no timer for it; a body still on its way is not
marked, and keeps its deadline. A request its parser cannot read gets problem+json. A real
uvicorn with that protocol, on a loopback port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from service.fronts.connections import BODY_RECEIVED, HeadDeadlineProtocol
from tests.raw_http import converse

HEAD = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"


async def report_the_mark(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the mark as the first `receive` found it, and the body it received."""
    if scope["type"] != "http":
        return
    marked = bool(scope.get(BODY_RECEIVED))
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer = b"%d %s" % (marked, body)
    headers = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    config = uvicorn.Config(
        report_the_mark, host="127.0.0.1", port=free, http=HeadDeadlineProtocol,
        loop="uvloop", lifespan="off", log_level="warning",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    yield free
    server.should_exit = True
    thread.join(timeout=10)


def test_a_body_sent_with_its_head_is_marked(port: int) -> None:
    answer = converse(port, [HEAD + b"hello"], timeout=10)
    assert answer.body == b"1 hello"


def test_a_body_still_on_its_way_is_not_marked(port: int) -> None:
    answer = converse(port, [HEAD, 0.3, b"hello"], timeout=10)
    assert answer.body == b"0 hello"


def test_a_request_the_parser_refuses_gets_problem_json_with_the_reason(port: int) -> None:
    twice = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
    answer = converse(port, [twice + b"123456"], timeout=10)
    assert (answer.status, answer.media_type) == (400, "application/problem+json")
    assert answer.headers["connection"] == "close"
    problem = json.loads(answer.body)
    assert problem["type"] == "urn:digit-ae:problem:bad-http"
    assert problem["detail"] == "the request is not valid HTTP/1.1: Duplicate Content-Length"
    assert problem["request_id"] == answer.headers["x-request-id"]
