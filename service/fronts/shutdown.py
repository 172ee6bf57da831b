"""Stopping without dropping requests, and reloading on a signal.

SIGTERM (an orchestrator or `docker stop`):
  1. `/readyz` answers 503 "shutting down" and new verb requests get 503 problem+json with
     `Retry-After` and `Connection: close`, for `AE_SHUTDOWN_DRAIN` seconds, so that load
     balancers take the replica out before it stops listening;
  2. uvicorn stops accepting and waits up to `AE_SHUTDOWN_TIMEOUT` for in-flight requests:
     first the listener turns new connections away and those already queued on it are
     accepted (closing it would reset them, listening.py); then every request on an accepted
     connection is answered before its connection closes (connections.py);
  3. the lifespan drains the micro-batcher (every queued batch runs) and the process exits 0.
SIGINT (Ctrl+C at a terminal) skips the drain. A second SIGTERM/SIGINT ends the drain early;
a third abandons requests still in flight.
SIGHUP reloads the configured model file (see reload.py); the old model serves until the swap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import NotReady
from service.fronts.auth import does_work
from service.fronts.listening import queued_connections, turn_away_new_connections
from service.fronts.problems import scope_problem
from service.state import Runtime

log = logging.getLogger("service")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SHUTTING_DOWN = "shutting down"
ACCEPT_QUEUE_WAIT_S = 1.0  # the loop accepts a queue in one turn; this bounds a stuck one


class ServiceServer(uvicorn.Server):
    """uvicorn's server with a readiness drain before it stops, and SIGHUP for reload."""

    def __init__(self, config: uvicorn.Config, drain_s: float) -> None:
        super().__init__(config)
        self.drain_s = drain_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self._empty_accept_queues()
        await super().shutdown(sockets)

    async def _empty_accept_queues(self) -> None:
        # uvicorn's shutdown closes the listeners first, which would reset the connections
        # queued on them (listening.py): turn new ones away, and accept those first.
        listeners = [sock for server in self.servers for sock in server.sockets]
        if not all([turn_away_new_connections(sock) for sock in listeners]):
            return
        deadline = asyncio.get_running_loop().time() + ACCEPT_QUEUE_WAIT_S
        while any(queued_connections(sock) for sock in listeners):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("stopping with connections still queued on the listener")
                return
            await asyncio.sleep(0.005)  # the loop accepts them between two looks

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the signal once stopped, which ends the process with -15; a
        # shutdown that completed is a success, so this server exits 0 instead.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs between two bytecodes of the event loop's thread: hand the work to the loop.
        if self._loop is None or self._loop.is_closed():
            self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        if sig == signal.SIGHUP:
            self._reload()
        elif self.should_exit:
            log.warning("second stop signal: abandoning requests still in flight")
            self.force_exit = True
        elif self._draining or sig == signal.SIGINT:
            self._stop()
        else:
            self._drain()

    def _runtime(self) -> Runtime | None:
        # The lifespan yields {"runtime": ...}; uvicorn keeps that state on its lifespan.
        lifespan = getattr(self, "lifespan", None)
        runtime = getattr(lifespan, "state", {}).get("runtime")
        return runtime if isinstance(runtime, Runtime) else None

    def _drain(self) -> None:
        runtime = self._runtime()
        if runtime is None or self.drain_s <= 0:
            self._stop()
            return
        self._draining = True
        runtime.ready, runtime.not_ready_reason = False, SHUTTING_DOWN
        log.info("SIGTERM: not ready; stopping in %g s (AE_SHUTDOWN_DRAIN)", self.drain_s)
        assert self._loop is not None
        self._loop.call_later(self.drain_s, self._stop)

    def _stop(self) -> None:
        runtime = self._runtime()
        if runtime is not None:
            runtime.ready, runtime.not_ready_reason = False, SHUTTING_DOWN
        if not self.should_exit:
            log.info("stopping: finishing requests in flight")
        self.should_exit = True

    def _reload(self) -> None:
        runtime = self._runtime()
        if runtime is None or runtime.reloader is None or self._draining or self.should_exit:
            log.warning("SIGHUP ignored: the service is not serving")
            return
        log.info("SIGHUP: reloading the configured model file")
        task = asyncio.ensure_future(runtime.reloader.reload_on_signal())
        self._tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)


class ReadinessGate:
    """Refuses work (the verbs and /admin) while the service says it is not ready, so that a
    replica on its way out sends clients elsewhere instead of starting what it cannot finish."""

    def __init__(self, app: ASGIApp, *, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.runtime.ready or not does_work(scope["path"]):
            await self.app(scope, receive, send)
            return
        exc = NotReady(f"the service is {self.runtime.not_ready_reason or 'not ready'}")
        headers = {**exc.headers, "Connection": "close"}
        await scope_problem(scope, exc, headers)(scope, receive, send)
