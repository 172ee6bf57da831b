"""uvicorn's HTTP/1.1 protocol with a deadline on request heads.

uvicorn times out idle kept-alive connections, but not a client that connects and says nothing,
nor one that stops in the middle of its headers: each holds a connection (and a file
descriptor) for as long as it likes. Here a request head that is not complete within
`head_timeout` seconds closes the connection. The body has its own deadline (middleware.py),
which it can skip when this protocol marks the request's scope `BODY_RECEIVED`: the server
already holds the whole body, as it does for nearly every digit (head and body come in one read).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
