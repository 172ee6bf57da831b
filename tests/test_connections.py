"""The service's HTTP protocol marks a request whose whole body the server already holds, so
that the body deadline (middleware.py) needs no timer for it; a body still on its way is not
marked, and keeps its deadline. A request its parser cannot read gets problem+json; a head over
the limit gets 431 and a closed connection, and many of them leave the server's memory flat. A
server that stops answers a request that crossed the stop on an idle connection. A real uvicorn
with that protocol on a loopback port, and a real `python -m service`."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from service.fronts.connections import BODY_RECEIVED, HeadDeadlineProtocol
from tests.raw_http import RawResponse, converse, read_response, wait_closed
from tests.support import free_port, start_service

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


@contextlib.contextmanager
def serving(protocol: type[HeadDeadlineProtocol]) -> Iterator[tuple[uvicorn.Server, int]]:
    """A uvicorn server in a thread, serving `report_the_mark` over `protocol`."""
    port = free_port()
    config = uvicorn.Config(
        report_the_mark, host="127.0.0.1", port=port, http=protocol,
        loop="uvloop", lifespan="off", log_level="warning",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield server, port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the test server did not stop"


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with serving(HeadDeadlineProtocol) as (_, port):
        yield port


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


def head_of(size: int) -> bytes:
    """A request head (request line and headers, blank line included) of exactly `size` bytes."""
    start, end = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


def assert_head_refused(answer: RawResponse, limit: int) -> None:
    assert (answer.status, answer.media_type) == (431, "application/problem+json")
    assert answer.headers["connection"] == "close"
    problem = json.loads(answer.body)
    assert problem["type"] == "urn:digit-ae:problem:head-too-large"
    assert problem["title"] == "Request Header Fields Too Large"
    assert str(limit) in problem["detail"] and "AE_MAX_HEAD_BYTES" in problem["detail"]
    assert problem["request_id"] == answer.headers["x-request-id"]


def test_a_head_at_the_limit_is_read_and_one_byte_more_is_refused_with_431(port: int) -> None:
    limit = HeadDeadlineProtocol.max_head_bytes
    answer = converse(port, [head_of(limit) + b"hello"], timeout=10)
    assert (answer.status, answer.body) == (200, b"1 hello")
    refused = converse(port, [head_of(limit + 1) + b"hello"], timeout=10, then_closed=True)
    assert_head_refused(refused, limit)


def test_an_8_mib_header_line_gets_431_and_a_closed_connection(port: int) -> None:
    line = b"GET /x HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (8 * 1024 * 1024) + b"\r\n\r\n"
    answer = converse(port, [line], timeout=30, then_closed=True)
    assert_head_refused(answer, HeadDeadlineProtocol.max_head_bytes)


def test_a_body_sent_with_its_head_does_not_count_as_head(port: int) -> None:
    body = b"b" * (1024 * 1024)  # one send: the server's first read holds head and body
    head = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
    answer = converse(port, [head + body], timeout=30)
    assert (answer.status, answer.body[2:]) == (200, body)  # after the mark: "0 " or "1 "


def test_pipelined_requests_under_the_limit_are_all_answered(port: int) -> None:
    last = HEAD.replace(b"Host: t\r\n", b"Host: t\r\nConnection: close\r\n")
    answers = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall((HEAD + b"hello") * 2 + last + b"hello")
        while chunk := sock.recv(65536):  # to the server's close, after the third answer
            answers += chunk
    assert answers.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert answers.count(b"\r\n\r\n1 hello") == 3


class PatientProtocol(HeadDeadlineProtocol):
    idle_grace = 10.0  # however slow the test machine, the request below comes within it


def test_a_request_that_crosses_the_stop_on_an_idle_connection_is_answered() -> None:
    with (
        serving(PatientProtocol) as (server, port),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        deadline = time.monotonic() + 20
        sock.sendall(HEAD + b"hello")
        first = read_response(sock, deadline)
        assert (first.status, first.headers.get("connection")) == (200, None)  # kept alive
        server.should_exit = True
        _wait_refused(port, deadline)  # the server has stopped listening: it is stopping
        sock.sendall(HEAD + b"again")  # as a client that sent before it could know
        second = read_response(sock, deadline)
        assert (second.status, second.body) == (200, b"1 again")
        assert second.headers["connection"] == "close"
        wait_closed(sock, deadline)


def _wait_refused(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.01)
    raise AssertionError("the server never stopped listening")


CONNECTIONS, LINE_BYTES, CHUNK = 200, 1024 * 1024, 64 * 1024


def test_oversized_heads_on_many_connections_leave_the_service_memory_flat(
    tmp_path: Path,
) -> None:
    with start_service(tmp_path) as service:
        big = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (8 * 1024 * 1024)
        answer = converse(service.port, [big + b"\r\n\r\n"], timeout=30, then_closed=True)
        assert_head_refused(answer, 32 * 1024)  # the default, AE_MAX_HEAD_BYTES
        pid = service.process.pid
        _flood_with_heads(service.port, 10, pid)  # the same code paths once, before measuring
        before = _rss_kib(pid)
        peak = _flood_with_heads(service.port, CONNECTIONS, pid)
        # Without the limit the server would hold every line: RSS grew 211 MiB here.
        assert peak - before < 8 * 1024, f"RSS grew {peak - before} KiB"
        with service.client() as client:
            assert client.get("/healthz").status_code == 200


def _flood_with_heads(port: int, connections: int, pid: int) -> int:
    """Every connection sends LINE_BYTES of one header line, all of them at once; returns the
    server's peak RSS (KiB) while they are open and the server reads what they sent."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(connections)]
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
        for _ in range(LINE_BYTES // CHUNK):
            for sock in socks:
                with contextlib.suppress(OSError):  # refused and closed: the rest has nowhere to go
                    sock.sendall(b"a" * CHUNK)
        # Most of it waits in the kernel's socket buffers: watch while the server reads it all
        # (the refused connections linger for 2 s, reading and dropping).
        peak, until = 0, time.monotonic() + 1.5
        while time.monotonic() < until:
            peak = max(peak, _rss_kib(pid))
            time.sleep(0.05)
        return peak
    finally:
        for sock in socks:
            sock.close()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")
