"""uvicorn's HTTP/1.1 protocol with bounded request heads, problem+json refusals, and closes
that never reset a client.

Heads. uvicorn times out idle kept-alive connections, but not a client that connects and says
nothing, nor one that stops in the middle of its headers: here a request head that is not
complete within `head_timeout` seconds closes the connection. Nor does uvicorn bound a head's
size: httptools gathers each header line in Python, however long. Here the bytes of a head are
counted before the parser sees them, and a head longer than `max_head_bytes` (request line and
headers) is answered 431 problem+json `head-too-large` and the connection closed, so no
connection holds more than that of a head. The body has its own deadline and limit
(middleware.py); its deadline needs no timer when this protocol marks the request's scope
`BODY_RECEIVED`: the server already holds the whole body, as it does for nearly every digit.

A request the HTTP parser cannot read (two Content-Lengths, a chunk size that is not hex...)
never reaches the app. uvicorn refuses it with a plain-text 400; here it gets problem+json
`bad-http`, naming the parser's reason, like every other refusal.

Closes. The kernel answers bytes that reach a closed socket, or that sit unread in it as it
closes, with a reset, which can destroy an answer before its client reads it and leaves a
client that just sent a request unable to tell whether it ran. So: after an answer that closes
the connection (`Connection: close`, a refusal) the server sends its FIN, then reads and drops
whatever the client still sends until the client closes too (at most `LINGER_S`), as nginx's
lingering close does. And when the server stops (uvicorn calls `shutdown`), the request in
progress is answered with `Connection: close`, and an idle connection is kept for a next request
a client may have sent before it could know (answered, with `Connection: close`) until it has
been idle `IDLE_GRACE_S` with nothing unread in its socket; only then is it closed.

This is the service's only server protocol: `python -m service` always names it (no setting
picks uvicorn's h11 or plain httptools one), for one worker or several.
"""

from __future__ import annotations

import array
import asyncio
import fcntl
import sys
import termios
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.errors import HeadTooLarge, MalformedHTTP, ServiceError
from service.fronts.problems import PROBLEM_MEDIA_TYPE, problem_json
from service.fronts.request_ids import new_request_id
from service.settings import Settings

BODY_RECEIVED = "service.body_received"  # scope key: True once the server holds the whole body
LINGER_S = 2.0  # the longest a closing connection reads and drops what its client still sends
# At a stop, how long after its last answer an idle connection waits for a next request: a
# client's turnaround plus a round trip, for clients that sent one before they saw the stop.
IDLE_GRACE_S = 1.0


class AnswerTransport(asyncio.Transport):
    """The connection as a request's answer sees it: uvicorn closes the connection through it
    when an answer says `Connection: close`; here that close is the protocol's lingering one."""

    def __init__(self, transport: asyncio.Transport, close: Callable[[], None]) -> None:
        super().__init__()
        self.write = transport.write  # type: ignore[method-assign]  # bound once: no extra call
        self.is_closing = transport.is_closing  # type: ignore[method-assign]
        self.close = close  # type: ignore[method-assign]


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the heads, refusals and closes the module describes."""

    # AE_REQUEST_TIMEOUT and AE_MAX_HEAD_BYTES, set by `configure` in `python -m service` (and
    # in each worker) before serving.
    head_timeout: float = 10.0
    max_head_bytes: int = 32 * 1024
    idle_grace: float = IDLE_GRACE_S
    _head_timer: asyncio.TimerHandle | None = None
    _head_began: float | None = None  # when the head in progress began; None between heads
    _head_bytes: int | None = 0  # bytes of the head in progress fed so far; None in a body
    _answers: AnswerTransport
    _last_answer = 0.0  # loop time of the last answer sent (or of the connection's start)
    _closing_timer: asyncio.TimerHandle | None = None  # ends a linger, or looks again at idle
    _stopping = False  # the server is stopping: every answer from now on closes
    _lingering = False  # answered and closing: what the client still sends is dropped

    @classmethod
    def configure(cls, settings: Settings) -> None:
        """Take the settings' limits; before serving (connections are made by uvicorn)."""
        cls.head_timeout = settings.request_timeout
        cls.max_head_bytes = settings.max_head_bytes

    # One timer per connection, moved along lazily: a timer set and cancelled for every request
    # cost more event-loop time than the rest of this class.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._answers = AnswerTransport(transport, self._close_after_answer)
        self._head_began = self._last_answer = self.loop.time()  # silence counts as a slow head
        self._head_timer = self.loop.call_later(self.head_timeout, self._check_head)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the last answer is out: read, and dropped
        used = self._head_bytes
        if used is None or used + len(data) <= self.max_head_bytes:
            if used is not None:  # counted before the parser sees it (it resets the count)
                self._head_bytes = used + len(data)
            super().data_received(data)
            return
        self._feed_up_to_limit(data, self.max_head_bytes - used)

    def _feed_up_to_limit(self, data: bytes, room: int) -> None:
        # More than the head may still take: feed what it may, and see whether it ended there.
        # (A pipelined request's head that begins in the same bytes goes uncounted until the
        # next read: it can reach twice the limit, never more.)
        self._head_bytes = self.max_head_bytes
        super().data_received(data[:room])
        if self._lingering or self.transport.is_closing():
            return  # refused by the parser
        if self._head_bytes == self.max_head_bytes:  # the same head, still going
            detail = f"the request line and headers exceed {self.max_head_bytes} bytes"
            self._refuse(HeadTooLarge(f"{detail} (AE_MAX_HEAD_BYTES)"))
            return
        self.data_received(data[room:])  # the head ended within its room: body or next request

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_began = self.loop.time()

    def on_headers_complete(self) -> None:
        self._head_began = self._head_bytes = None
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = self._answers
            if self._stopping:
                self.cycle.keep_alive = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes = 0
        self.scope[BODY_RECEIVED] = True  # type: ignore[literal-required]  # a key of our own

    def on_response_complete(self) -> None:
        self._last_answer = self.loop.time()
        if self._lingering:
            self.server_state.total_requests += 1  # as uvicorn counts; nothing more follows
            return
        super().on_response_complete()
        if self._stopping:
            self._close_when_idle()

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this while handling the parser's exception, which says what was wrong.
        reason = sys.exc_info()[1] or msg
        self._refuse(MalformedHTTP(f"the request is not valid HTTP/1.1: {reason}"))

    def _refuse(self, error: ServiceError) -> None:
        """Answer problem+json before any route saw the request, and close the connection."""
        request_id = new_request_id()  # the app, which gives the others, never sees this one
        body = problem_json(error.body(), request_id)
        head = [STATUS_LINE[error.status]]
        head += [b"%s: %s\r\n" % pair for pair in self.server_state.default_headers]
        head += [
            b"content-type: %s\r\n" % PROBLEM_MEDIA_TYPE.encode(),
            b"content-length: %d\r\n" % len(body),
            b"x-request-id: %s\r\n" % request_id.encode(),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # a body cut short: its handler hears a disconnect
            self.cycle.message_event.set()
        # Nothing more is parsed: let go of what the parser holds of the head (up to the limit)
        self.parser, self.url, self.headers = None, b"", []  # type: ignore[assignment]
        self._close_after_answer()

    def _close_after_answer(self) -> None:
        """FIN once the answer is out, then read and drop until the client closes its end (or
        LINGER_S passes): a close with the client's bytes unread would reset it instead.
        Requests pipelined behind an answer that said `Connection: close` go unanswered, as
        RFC 9112 (9.3.2) allows; their client sends them again."""
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        self.pipeline.clear()
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()  # the transport closes itself at the client's FIN
        self._set_closing_timer(LINGER_S, self.transport.close)

    def shutdown(self) -> None:
        """uvicorn stops: the request in progress is answered with `Connection: close`; an idle
        connection is closed once it has been idle a while with nothing unread."""
        self._stopping = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        else:
            self._close_when_idle()

    def timeout_keep_alive_handler(self) -> None:
        # uvicorn closes at once, even with a request just arrived, unread: that one is read
        # and answered instead, and its answer sets this timer again.
        if not self.transport.is_closing() and not _unread_bytes(self.transport):
            self.transport.close()

    def _close_when_idle(self) -> None:
        # While stopping (the timer it sets would otherwise close a kept-alive connection early).
        if self._lingering or self.transport.is_closing():
            return
        wait = self._last_answer + self.idle_grace - self.loop.time()
        if self._busy() or wait > 0 or _unread_bytes(self.transport):
            # A request on its way, in progress or just arrived: it gets its answer (which
            # closes) first; look again in a while in case it never comes.
            self._set_closing_timer(max(wait, 0.05), self._close_when_idle)
            return
        self.transport.close()  # nothing unread, nothing to answer: no reset

    def _busy(self) -> bool:
        in_progress = self.cycle is not None and not self.cycle.response_complete
        return in_progress or bool(self.pipeline) or self._head_bytes != 0

    def _set_closing_timer(self, delay: float, then: Callable[[], None]) -> None:
        if self._closing_timer is not None:
            self._closing_timer.cancel()
        self._closing_timer = self.loop.call_later(delay, then)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._closing_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._closing_timer = None
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


def _unread_bytes(transport: asyncio.Transport) -> int:
    """Bytes the client sent that sit in the socket, not yet read (FIONREAD)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    count = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    return count[0]
