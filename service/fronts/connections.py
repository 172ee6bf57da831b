"""uvicorn's HTTP/1.1 protocol with a deadline on request heads, and problem+json refusals.

uvicorn times out idle kept-alive connections, but not a client that connects and says nothing,
nor one that stops in the middle of its headers: each holds a connection (and a file
descriptor) for as long as it likes. Here a request head that is not complete within
`head_timeout` seconds closes the connection. The body has its own deadline (middleware.py),
which it can skip when this protocol marks the request's scope `BODY_RECEIVED`: the server
already holds the whole body, as it does for nearly every digit (head and body come in one read).

A request the HTTP parser cannot read (two Content-Lengths, a chunk size that is not hex...)
never reaches the app. uvicorn refuses it with a plain-text 400; here it gets problem+json
`bad-http`, naming the parser's reason, like every other refusal.
"""

from __future__ import annotations

import asyncio
import sys

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import MalformedHTTP
from service.fronts.problems import PROBLEM_MEDIA_TYPE, problem_json
from service.fronts.request_ids import new_request_id

BODY_RECEIVED = "service.body_received"  # scope key: True once the server holds the whole body


class HeadDeadlineProtocol(HttpToolsProtocol):
    # Set from AE_REQUEST_TIMEOUT by `python -m service` (and in each worker) before serving.
    head_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    _head_began: float | None = None  # when the head in progress began; None between heads

    # One timer per connection, moved along lazily: a timer set and cancelled for every request
    # cost more event-loop time than the rest of this class.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_began = self.loop.time()  # saying nothing at all counts as a slow head
        self._head_timer = self.loop.call_later(self.head_timeout, self._check_head)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_began = self.loop.time()

    def on_headers_complete(self) -> None:
        self._head_began = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.scope[BODY_RECEIVED] = True  # type: ignore[literal-required]  # a key of our own

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this while handling the parser's exception, which says what was wrong.
        reason = sys.exc_info()[1] or msg
        request_id = new_request_id()  # the app, which gives the others, never sees this one
        problem = MalformedHTTP(f"the request is not valid HTTP/1.1: {reason}").body()
        body = problem_json(problem, request_id)
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        head += [b"%s: %s\r\n" % pair for pair in self.server_state.default_headers]
        head += [
            b"content-type: %s\r\n" % PROBLEM_MEDIA_TYPE.encode(),
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: %s\r\n" % request_id.encode(),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _check_head(self) -> None:
        began, now = self._head_began, self.loop.time()
        if began is not None and now - began >= self.head_timeout:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()
            return
        due = (began if began is not None else now) + self.head_timeout
        self._head_timer = self.loop.call_at(due, self._check_head)
