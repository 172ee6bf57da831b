"""Request and response bodies on the hot path, for every front: headers read straight from the
ASGI scope, the body straight from `receive`, and answers whose headers are written as bytes.

Starlette's conveniences cost more than the work on a 28x28 digit: `request.headers` builds a
multi-dict of every header for two look-ups, `request.body()` runs an async generator for what
is nearly always one message, and `Response` normalises the headers it is given.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response


def header(request: Request, name: bytes) -> str | None:
    """The first value of a header, by its lower-case name."""
    for key, value in request.scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def media_type(request: Request) -> str:
    return (header(request, b"content-type") or "").split(";", 1)[0].strip().lower()


async def read_body(request: Request) -> bytes:
    """The whole body (within the limits `middleware.RequestContext` puts on `receive`)."""
    chunks = []
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class RawBody(Response):
    """A 200 answer of `content`, its headers given as bytes and written as they are."""

    def __init__(self, content: bytes, content_type: bytes, *headers: tuple[bytes, bytes]) -> None:
        self.status_code = 200
        self.body = content
        self.background = None
        self.raw_headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(content)).encode()),
            *headers,
        ]
