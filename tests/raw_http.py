"""A bare HTTP/1.1 conversation over a socket, for requests no HTTP library will send:
lying lengths, bodies that stop half way, chunked streams past the limit."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip()


def converse(
    port: int, script: Sequence[bytes | float], timeout: float, *, then_closed: bool = False
) -> RawResponse:
    """Send each bytes step (a float step is a pause in seconds), then read one response;
    with `then_closed`, also wait for the server to close the connection (`wait_closed`).

    Raises TimeoutError when no complete response arrives within `timeout` seconds in all.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for step in script:
            if isinstance(step, float):
                time.sleep(step)
                continue
            try:
                sock.sendall(step)
            except OSError:  # the server answered early and stopped reading: read that answer
                break
        response = read_response(sock, deadline)
        if then_closed:
            wait_closed(sock, deadline)
        return response


def read_response(sock: socket.socket, deadline: float) -> RawResponse:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += _receive(sock, deadline)
    head, _, body = buffer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += _receive(sock, deadline)
    return RawResponse(int(status_line.split()[1]), headers, body[:length])


def wait_closed(sock: socket.socket, deadline: float) -> None:
    """Returns once the server has closed the connection cleanly (its FIN: the client reads
    end-of-file); a reset raises ConnectionResetError, bytes beyond the response or the
    deadline raise too."""
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    extra = sock.recv(65536)
    if extra:
        raise AssertionError(f"the connection stayed open and sent {extra[:80]!r}")


def _receive(sock: socket.socket, deadline: float) -> bytes:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no complete response before the deadline")
    sock.settimeout(left)
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection before a complete response")
    return data
