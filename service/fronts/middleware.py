"""What every HTTP request gets, as plain ASGI (no per-request objects beyond a closure):
a request id, the `X-Request-ID` and `X-Model-Version` response headers, the body-size limit
(refused from `Content-Length` before reading, or as soon as a chunked body passes it), a
deadline for the body to arrive, the request count / latency / in-flight metrics, and the
access log line (AE_ACCESS_LOG) with the request's id, route, status, duration and model version.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import BodyTimeout, PayloadTooLarge
from service.fronts.connections import BODY_RECEIVED
from service.fronts.problems import scope_problem
from service.fronts.request_ids import new_request_id
from service.metrics import Metrics

_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")

access_log = logging.getLogger("service.access")


class RequestContext:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout: float,
        metrics: Metrics,
        model_version: Callable[[], str],
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.metrics = metrics
        self.model_version = model_version
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id, declared = _read_headers(scope)
        request_id = request_id or new_request_id()
        scope["request_id"] = request_id
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # The model that served the request (set by the verbs), else the live one.
                version = scope.get("model_version") or self.model_version()
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                    (b"x-model-version", version.encode()),
                ]
            await send(message)

        started = time.perf_counter()
        self.metrics.request_started()
        try:
            if declared is not None and declared > self.max_body_bytes:
                await self._refuse_declared(declared, scope, send_with_headers)
            else:
                await self.app(scope, self._limited(scope, receive), send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_label(scope)
            self.metrics.request_finished(route, status, elapsed)
            if self.access_log:
                version = scope.get("model_version") or self.model_version()
                log_access(scope, request_id, route, status, elapsed, version)

    async def _refuse_declared(self, declared: int, scope: Scope, send: Send) -> None:
        exc = PayloadTooLarge(
            f"Content-Length {declared} exceeds the limit of {self.max_body_bytes} bytes "
            "(AE_MAX_BODY_BYTES)"
        )
        response = scope_problem(scope, exc, {"Connection": "close"})
        await response({"type": "http"}, _no_body, send)

    def _limited(self, scope: Scope, receive: Receive) -> Receive:
        limit, timeout, seen, complete = self.max_body_bytes, self.body_timeout, 0, False
        # For the whole body, from the first wait for it. Not set up front: on Python 3.11,
        # asyncio.get_running_loop() makes a getpid() system call, and most bodies never wait.
        deadline: float | None = None

        async def receive_limited() -> Message:
            nonlocal seen, complete, deadline
            if complete:  # after the body, receive only waits for a disconnect: no deadline
                return await receive()
            if scope.get(BODY_RECEIVED):
                # The server holds the whole body, so it comes at once. A deadline would cost a
                # timer set and cancelled: an eighth of a digit's event-loop time.
                message = await receive()
            else:
                if deadline is None:
                    deadline = asyncio.get_running_loop().time() + timeout
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    raise BodyTimeout(
                        f"the request body did not arrive within {timeout:g} s; "
                        f"received {seen} bytes"
                    ) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if seen > limit:
                    raise PayloadTooLarge(
                        f"request body exceeds the limit of {limit} bytes (AE_MAX_BODY_BYTES)"
                    )
            return message

        return receive_limited


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _read_headers(scope: Scope) -> tuple[str | None, int | None]:
    request_id, declared = None, None
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _SAFE_ID.match(value):
            request_id = value.decode()
        elif name == b"content-length":
            declared = int(value) if value.isdigit() else None
    return request_id, declared


def log_access(
    scope: Scope, request_id: str, route: str, status: int, elapsed: float, version: str
) -> None:
    """One line per request; its fields are what `service/logs.py` writes as JSON fields."""
    # The path as sent (percent-encoded), so that no decoded character can break a text line.
    path = (scope.get("raw_path") or scope["path"].encode()).decode("ascii", "backslashreplace")
    client = scope.get("client")
    duration_ms = round(elapsed * 1000, 3)
    access_log.info(
        "%s %s %d %.1f ms", scope["method"], path, status, duration_ms,
        extra={
            "request_id": request_id, "method": scope["method"], "route": route, "path": path,
            "status": status, "duration_ms": duration_ms, "model_version": version,
            "client": f"{client[0]}:{client[1]}" if client else None,
        },
    )  # fmt: skip


def _route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
