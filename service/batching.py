"""Dynamic micro-batching: concurrent calls per model method merged into one forward pass.

Handlers `await batcher.submit(method, items)` on the event loop; one inference thread takes
the queued work of one method at a time and runs it as a single batch. The rules:

- a batch holds at most `max_batch_size` items (a single request larger than that runs alone);
- when the thread is idle, new work runs at once: a lone request never waits out the window;
- when the thread comes back from a batch and finds work, it waits until the oldest queued item
  is `max_delay` old or the batch is full, whichever comes first (0: run what is queued now);
- at most `max_queue` items wait; past that, `submit` raises `Overloaded` at once;
- a caller that gives up (timeout, disconnect) loses its place without using a batch slot;
- an exception in a batch fails that batch's callers only.

The event loop never touches torch, and the thread wakes the loop once per batch, not per item.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from service.errors import NotReady, Overloaded, TimedOut

Outputs = tuple[np.ndarray, ...]
RunBatch = Callable[[str, np.ndarray], Outputs]
OnBatch = Callable[[str, int, float], None]


@dataclass(frozen=True, slots=True)
class Timing:
    queue_s: float  # from submit until its batch started
    infer_s: float  # the batch's model time
    batch_size: int


@dataclass(slots=True)
class _Pending:
    items: np.ndarray  # (k, ...) one request's items
    future: asyncio.Future[tuple[Outputs, Timing]]
    enqueued: float


class BatchFailed(RuntimeError):
    """The model call for a batch raised; every caller in that batch gets this."""


class MicroBatcher:
    def __init__(
        self,
        run: RunBatch,
        methods: Sequence[str],
        *,
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int,
        on_batch: OnBatch | None = None,
    ) -> None:
        self._run = run
        self._queues: dict[str, collections.deque[_Pending]] = {
            m: collections.deque() for m in methods
        }
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._cond = threading.Condition()
        self._queued = 0  # items waiting, not yet taken by the thread
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        return self._queued

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._work, name="inference", daemon=True)
        self._thread.start()

    async def submit(
        self, method: str, items: np.ndarray, timeout: float | None = None
    ) -> tuple[Outputs, Timing]:
        """Queue `items` (k, ...) for `method`; returns its slice of the batch's outputs."""
        loop = self._loop
        if loop is None or self._stopping:
            raise NotReady("the service is shutting down")
        future: asyncio.Future[tuple[Outputs, Timing]] = loop.create_future()
        count = len(items)
        with self._cond:
            if self._queued + count > self.max_queue:
                raise Overloaded(
                    f"{self._queued} items are already waiting for the model "
                    f"(AE_MAX_QUEUE={self.max_queue}); retry shortly"
                )
            self._queues[method].append(_Pending(items, future, time.perf_counter()))
            self._queued += count
            if not self._busy:
                self._cond.notify()
        if timeout is None:
            return await future
        timer = loop.call_later(timeout, _expire, future, timeout)
        try:
            return await future
        finally:
            timer.cancel()

    async def stop(self) -> None:
        """Finish every queued batch, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # The inference thread

    def _work(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
                if batch is None:
                    return
                self._busy = True
            method, pending = batch
            self._run_batch(method, pending)
            with self._cond:
                self._busy = False

    def _next_batch(self) -> tuple[str, list[_Pending]] | None:
        """Called with the lock held. Blocks until there is work; None once stopped and empty."""
        came_from_idle = False
        while not self._queued:
            if self._stopping:
                return None
            came_from_idle = True
            self._cond.wait()
        method = self._oldest_method()
        if not came_from_idle and not self._stopping:
            self._wait_for_window(method)
        return method, self._take(method)

    def _oldest_method(self) -> str:
        heads = [(q[0].enqueued, m) for m, q in self._queues.items() if q]
        return min(heads)[1]

    def _wait_for_window(self, method: str) -> None:
        queue = self._queues[method]
        deadline = queue[0].enqueued + self.max_delay_s
        while _items_up_to(queue, self.max_batch_size) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or self._stopping:
                return
            self._cond.wait(remaining)

    def _take(self, method: str) -> list[_Pending]:
        queue, taken, size = self._queues[method], [], 0
        while queue:
            head = queue[0]
            if head.future.done():  # timed out or cancelled while waiting: no slot used
                queue.popleft()
                self._queued -= len(head.items)
                continue
            if taken and size + len(head.items) > self.max_batch_size:
                break
            queue.popleft()
            self._queued -= len(head.items)
            taken.append(head)
            size += len(head.items)
        return taken

    def _run_batch(self, method: str, pending: list[_Pending]) -> None:
        if not pending:
            return
        assert self._loop is not None
        started = time.perf_counter()
        try:
            items = pending[0].items if len(pending) == 1 else np.concatenate(
                [p.items for p in pending]
            )  # (sum k, ...)
            outputs = self._run(method, items)
        except Exception as exc:  # one batch fails, the service goes on
            failure = BatchFailed(f"model call {method!r} failed: {type(exc).__name__}")
            self._loop.call_soon_threadsafe(_fail, pending, failure)
            return
        infer_s = time.perf_counter() - started
        if self._on_batch is not None:
            self._on_batch(method, len(items), infer_s)
        self._loop.call_soon_threadsafe(_deliver, pending, outputs, started, infer_s, len(items))


def _items_up_to(queue: collections.deque[_Pending], limit: int) -> int:
    total = 0
    for p in queue:
        total += len(p.items)
        if total >= limit:
            break
    return total


def _deliver(
    pending: list[_Pending], outputs: Outputs, started: float, infer_s: float, size: int
) -> None:
    """On the loop: hand each caller its rows of every output."""
    start = 0
    for p in pending:
        stop = start + len(p.items)
        if not p.future.done():
            rows = tuple(out[start:stop] for out in outputs)
            p.future.set_result((rows, Timing(started - p.enqueued, infer_s, size)))
        start = stop


def _fail(pending: list[_Pending], failure: BatchFailed) -> None:
    for p in pending:
        if not p.future.done():
            p.future.set_exception(failure)


def _expire(future: asyncio.Future[tuple[Outputs, Timing]], timeout: float) -> None:
    if not future.done():
        future.set_exception(
            TimedOut(f"no answer from the model within {timeout:g} s (AE_REQUEST_TIMEOUT)")
        )
