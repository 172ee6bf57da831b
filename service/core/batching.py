"""Dynamic micro-batching: concurrent calls per model method merged into one forward pass.

Handlers `await batcher.submit(method, items)` on the event loop. The loop keeps the queues
and forms the batches; one inference thread only runs them. The rules:

- a batch holds at most `max_batch_size` items (a single request larger than that runs alone);
- when no batch is running, new work starts at once (with whatever arrived in the same loop
  turn): a lone request never waits out the window;
- when a batch ends and work is waiting, the next batch starts when the oldest waiting item is
  `max_delay` old or the batch is full, whichever comes first (0: run what is waiting now);
- the method whose oldest item waited longest goes first;
- at most `max_queue` items wait; past that, `submit` raises `Overloaded` at once;
- a caller that gives up (timeout, disconnect) loses its place without using a batch slot;
- an exception in a batch fails that batch's callers only.

All bookkeeping happens on the loop, so a request costs no lock and no thread wake-up; the
thread is woken once per batch and wakes the loop once per batch. The loop never touches torch.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from service.errors import NotReady, Overloaded, TimedOut

log = logging.getLogger("service")

Outputs = tuple[np.ndarray, ...]
# A run returns its outputs and a word on who made them (the model version), passed to callers.
RunBatch = Callable[[str, np.ndarray], tuple[Outputs, str]]
OnBatch = Callable[[str, int, float], None]


@dataclass(frozen=True, slots=True)
class Timing:
    queue_s: float  # from submit until its batch started
    infer_s: float  # the batch's model time
    batch_size: int
    served_by: str = ""  # what the run said made this batch: the model version


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
        on_thread_start: Callable[[], None] | None = None,
    ) -> None:
        self._run = run
        self._on_thread_start = on_thread_start  # runs on the inference thread, first
        self._queues: dict[str, collections.deque[_Pending]] = {
            m: collections.deque() for m in methods
        }
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._queued = 0  # items waiting, not yet in a batch
        self._running = False  # a batch is on the inference thread
        self._wake: asyncio.Handle | None = None  # a scheduled _dispatch
        self._stopping = False
        self._idle: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        return self._queued

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="inference", initializer=self._on_thread_start
        )

    async def submit(
        self, method: str, items: np.ndarray, timeout: float | None = None
    ) -> tuple[Outputs, Timing]:
        """Queue `items` (k, ...) for `method`; returns its rows of the batch's outputs."""
        loop = self._loop
        if loop is None or self._stopping:
            raise NotReady("the service is shutting down")
        count = len(items)
        if self._queued + count > self.max_queue:
            raise Overloaded(
                f"{self._queued} items are already waiting for the model "
                f"(AE_MAX_QUEUE={self.max_queue}); retry shortly"
            )
        future: asyncio.Future[tuple[Outputs, Timing]] = loop.create_future()
        self._queues[method].append(_Pending(items, future, time.perf_counter()))
        self._queued += count
        if not self._running:
            self._nudge(loop, method)
        if timeout is None:
            return await future
        timer = loop.call_later(timeout, _expire, future, timeout)
        try:
            return await future
        finally:
            timer.cancel()

    async def stop(self) -> None:
        """Refuse new work, finish every queued batch, then end the thread."""
        self._stopping = True
        assert self._idle is not None
        while self._running or self._queued:
            self._idle.clear()
            if not self._running and self._wake is None:
                self._dispatch(False)
            await self._idle.wait()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    # Forming batches (on the loop)

    def _nudge(self, loop: asyncio.AbstractEventLoop, method: str) -> None:
        """New work while no batch runs: start now if idle, or when a waiting batch fills."""
        if self._wake is None:  # idle: start with whatever else arrives this turn, no window
            self._wake = loop.call_soon(self._dispatch, False)
        elif isinstance(self._wake, asyncio.TimerHandle) and self._window_left(method) == 0:
            self._wake.cancel()  # the batch waiting for its window is full: go now
            self._wake = loop.call_soon(self._dispatch, False)

    def _dispatch(self, window: bool = True) -> None:
        """Start the next batch, or schedule this again when its window closes."""
        self._wake = None
        if self._running:
            return
        method = self._oldest_method()
        if method is None:
            self._set_idle()
            return
        wait = self._window_left(method) if window else 0.0
        if wait > 0:
            assert self._loop is not None
            self._wake = self._loop.call_later(wait, self._dispatch, False)
            return
        batch = self._take(method)
        if not batch:  # only abandoned requests were waiting
            self._dispatch(window)
            return
        self._launch(method, batch)

    def _oldest_method(self) -> str | None:
        oldest, chosen = None, None
        for method, queue in self._queues.items():
            while queue and queue[0].future.done():  # abandoned: drop, no slot used
                self._queued -= len(queue.popleft().items)
            if queue and (oldest is None or queue[0].enqueued < oldest):
                oldest, chosen = queue[0].enqueued, method
        return chosen

    def _window_left(self, method: str) -> float:
        """Seconds to wait for more items; 0 when the batch is full, old enough or stopping."""
        if self._stopping or self.max_delay_s <= 0:
            return 0.0
        queue, total = self._queues[method], 0
        for p in queue:
            total += len(p.items)
            if total >= self.max_batch_size:
                return 0.0
        return queue[0].enqueued + self.max_delay_s - time.perf_counter()

    def _take(self, method: str) -> list[_Pending]:
        queue, size = self._queues[method], 0
        taken: list[_Pending] = []
        while queue:
            head = queue[0]
            if not head.future.done():
                if taken and size + len(head.items) > self.max_batch_size:
                    break
                taken.append(head)
                size += len(head.items)
            queue.popleft()
            self._queued -= len(head.items)
        return taken

    def _launch(self, method: str, batch: list[_Pending]) -> None:
        assert self._loop is not None and self._executor is not None
        self._running = True
        items = batch[0].items if len(batch) == 1 else np.concatenate([p.items for p in batch])
        started = time.perf_counter()
        work = self._loop.run_in_executor(self._executor, self._timed_run, method, items)
        work.add_done_callback(lambda done: self._finish(method, batch, started, len(items), done))

    def _timed_run(self, method: str, items: np.ndarray) -> tuple[Outputs, str, float]:
        began = time.perf_counter()  # on the inference thread
        outputs, served_by = self._run(method, items)
        return outputs, served_by, time.perf_counter() - began

    def _finish(
        self,
        method: str,
        batch: list[_Pending],
        started: float,
        size: int,
        done: asyncio.Future[tuple[Outputs, str, float]],
    ) -> None:
        self._running = False
        try:
            outputs, served_by, infer_s = done.result()
        except Exception as exc:  # one batch fails, the service goes on
            _fail(batch, BatchFailed(f"model call {method!r} failed: {type(exc).__name__}"))
        else:
            _deliver(batch, outputs, Timing(0.0, infer_s, size, served_by), started)
            self._report(method, size, infer_s)
        self._dispatch()

    def _report(self, method: str, size: int, infer_s: float) -> None:
        if self._on_batch is None:
            return
        try:
            self._on_batch(method, size, infer_s)
        except Exception:  # a broken observer must not stop the batching
            log.exception("batch observer failed")

    def _set_idle(self) -> None:
        if self._idle is not None:
            self._idle.set()


def _deliver(batch: list[_Pending], outputs: Outputs, timing: Timing, started: float) -> None:
    """Hand each caller its rows of every output, with the batch's timing and its own wait."""
    start = 0
    for p in batch:
        stop = start + len(p.items)
        if not p.future.done():
            rows = tuple(out[start:stop] for out in outputs)
            mine = Timing(started - p.enqueued, timing.infer_s, timing.batch_size, timing.served_by)
            p.future.set_result((rows, mine))
        start = stop


def _fail(batch: list[_Pending], failure: BatchFailed) -> None:
    for p in batch:
        if not p.future.done():
            p.future.set_exception(failure)


def _expire(future: asyncio.Future[tuple[Outputs, Timing]], timeout: float) -> None:
    if not future.done():
        future.set_exception(
            TimedOut(f"no answer from the model within {timeout:g} s (AE_REQUEST_TIMEOUT)")
        )
