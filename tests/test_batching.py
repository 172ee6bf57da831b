"""The micro-batcher on its own: no HTTP, no torch, a stand-in model that tags its batches.

Each test drives a real `MicroBatcher` (its real inference thread) from `asyncio.run`. To hold
work in the queue on purpose, the stand-in model can be stopped at a gate inside a batch: the
thread is then busy, and whatever is submitted meanwhile waits for the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.core.batching import BatchFailed, MicroBatcher, Timing
from service.errors import NotReady, Overloaded, TimedOut

METHODS = ("encode", "decode")
OFFSET = {"encode": 1000.0, "decode": 2000.0}  # tells the methods' outputs apart
WAIT = 5.0  # seconds any single await may take before the test calls it stuck


class Model:
    """Doubles its items (plus a per-method offset), tags every row with its batch number and
    says it served the batch as `batch-<number>`."""

    def __init__(self, fail_if: Callable[[np.ndarray], bool] | None = None) -> None:
        self.batches: list[tuple[str, np.ndarray]] = []
        self.fail_if = fail_if
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)  # released once per batch started

    def __call__(self, method: str, items: np.ndarray) -> tuple[tuple[np.ndarray, ...], str]:
        self.batches.append((method, items.copy()))
        batch_id = len(self.batches) - 1
        self.entered.release()
        if not self.gate.wait(WAIT):
            raise TimeoutError("the test never opened the gate")
        if self.fail_if is not None and self.fail_if(items):
            raise ValueError("poisoned row")
        outputs = items * 2 + OFFSET[method], np.full(len(items), batch_id)  # (k, 2), (k,)
        return outputs, f"batch-{batch_id}"

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.acquire, True, WAIT), "no batch started"

    def sizes(self) -> list[int]:
        return [len(items) for _, items in self.batches]


def rows(caller: int, count: int) -> np.ndarray:
    """(count, 2): rows no other caller has, [caller, row]."""
    return np.stack([np.full(count, caller), np.arange(count)], axis=1).astype(np.float64)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


@contextlib.asynccontextmanager
async def running(
    model: Model,
    *,
    max_batch_size: int = 8,
    max_delay_s: float = 0.001,
    max_queue: int = 1024,
    on_batch: Callable[[str, int, float], None] | None = None,
) -> AsyncIterator[MicroBatcher]:
    batcher = MicroBatcher(
        model,
        METHODS,
        max_batch_size=max_batch_size,
        max_delay_s=max_delay_s,
        max_queue=max_queue,
        on_batch=on_batch,
    )
    batcher.start()
    try:
        yield batcher
    finally:
        model.gate.set()
        await asyncio.wait_for(batcher.stop(), WAIT)


async def occupy(batcher: MicroBatcher, model: Model) -> asyncio.Task[Any]:
    """Start a one-item batch and keep the thread inside it until `model.gate` is set."""
    model.gate.clear()
    task = asyncio.create_task(batcher.submit("encode", rows(-1, 1)))
    await model.wait_entered()
    return task


def submit(batcher: MicroBatcher, method: str, items: np.ndarray, **kw: Any) -> asyncio.Task[Any]:
    return asyncio.create_task(batcher.submit(method, items, **kw))


def check_own_rows(
    method: str, items: np.ndarray, result: tuple[Any, Timing], model: Model
) -> None:
    (out, batch_ids), timing = result
    np.testing.assert_array_equal(out, items * 2 + OFFSET[method])
    assert len(set(batch_ids.tolist())) == 1  # one request is never split across batches
    batch_method, batch_items = model.batches[int(batch_ids[0])]
    assert batch_method == method
    assert timing.batch_size == len(batch_items)
    assert timing.served_by == f"batch-{int(batch_ids[0])}"
    assert timing.queue_s >= 0 and timing.infer_s >= 0


# Results go back to the right caller


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from(METHODS),
            st.integers(1, 12),  # items in the request
            st.floats(0, 0.002),  # pause before submitting it
        ),
        min_size=1,
        max_size=24,
    ),
    max_batch_size=st.integers(1, 16),
    max_delay_s=st.sampled_from([0.0, 0.0005, 0.002]),
)
def test_every_caller_gets_exactly_its_own_rows(
    requests: list[tuple[str, int, float]], max_batch_size: int, max_delay_s: float
) -> None:
    model = Model()

    async def one(batcher: MicroBatcher, caller: int, method: str, count: int, pause: float):
        await asyncio.sleep(pause)
        items = rows(caller, count)
        return method, items, await batcher.submit(method, items)

    async def scenario() -> None:
        async with running(model, max_batch_size=max_batch_size, max_delay_s=max_delay_s) as b:
            tasks = [one(b, i, m, k, pause) for i, (m, k, pause) in enumerate(requests)]
            results = await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
        for method, items, result in results:
            check_own_rows(method, items, result, model)
        # every row was computed exactly once, and no batch outgrew the limit but a lone big one
        assert sum(model.sizes()) == sum(k for _, k, _ in requests)
        for (_, batch_items), size in zip(model.batches, model.sizes(), strict=True):
            callers = set(batch_items[:, 0].tolist())
            assert size <= max_batch_size or len(callers) == 1

    run(scenario)


def test_batches_are_capped_and_a_big_request_runs_alone() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=4) as batcher:
            first = await occupy(batcher, model)
            small = [submit(batcher, "encode", rows(i, 1)) for i in range(6)]
            big = submit(batcher, "encode", rows(99, 7))
            await asyncio.sleep(0.01)  # all queued behind the held batch
            model.gate.set()
            await asyncio.wait_for(asyncio.gather(first, *small, big), WAIT)
        assert model.sizes() == [1, 4, 2, 7]

    run(scenario)


def test_methods_are_never_mixed_in_one_batch() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=64) as batcher:
            first = await occupy(batcher, model)
            tasks = [submit(batcher, METHODS[i % 2], rows(i, 2)) for i in range(6)]
            await asyncio.sleep(0.01)
            model.gate.set()
            await asyncio.wait_for(asyncio.gather(first, *tasks), WAIT)
        assert sorted((m, len(items)) for m, items in model.batches[1:]) == [
            ("decode", 6),
            ("encode", 6),
        ]

    run(scenario)


# A lone request is not held back by the window


def test_lone_request_on_an_idle_batcher_is_not_delayed() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_delay_s=5.0) as batcher:
            # the first request, then each one right after the previous answer came back
            for caller in range(3):
                items = rows(caller, 1)
                result = await asyncio.wait_for(batcher.submit("encode", items), 1.0)
                check_own_rows("encode", items, result, model)

    run(scenario)


def test_a_batch_that_fills_while_its_window_is_open_starts_at_once() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=2, max_delay_s=2.0) as batcher:
            first = await occupy(batcher, model)
            early = submit(batcher, "encode", rows(1, 1))  # waits behind the running batch
            await asyncio.sleep(0.01)
            model.gate.set()
            await asyncio.wait_for(first, WAIT)  # the window for `early` is now open
            late = submit(batcher, "encode", rows(2, 1))  # and this fills its batch
            await asyncio.wait_for(asyncio.gather(early, late), 1.0)
        assert model.sizes() == [1, 2]

    run(scenario)


# Failures stay inside their batch


def test_an_exception_fails_only_its_batch() -> None:
    model = Model(fail_if=lambda items: bool((items[:, 0] == 13).any()))

    async def scenario() -> None:
        async with running(model, max_batch_size=8) as batcher:
            first = await occupy(batcher, model)
            poisoned = submit(batcher, "encode", rows(13, 1))
            neighbour = submit(batcher, "encode", rows(14, 2))
            await asyncio.sleep(0.01)
            model.gate.set()
            check_own_rows("encode", rows(-1, 1), await asyncio.wait_for(first, WAIT), model)
            for task in (poisoned, neighbour):
                with pytest.raises(BatchFailed, match=r"'encode' failed: ValueError"):
                    await asyncio.wait_for(task, WAIT)
            items = rows(15, 3)
            later = await asyncio.wait_for(batcher.submit("encode", items), WAIT)
            check_own_rows("encode", items, later, model)
        assert model.sizes() == [1, 3, 3]

    run(scenario)


def test_a_failing_on_batch_hook_does_not_stop_the_batching() -> None:
    model = Model()
    calls = []

    def on_batch(method: str, size: int, infer_s: float) -> None:
        calls.append(size)
        if len(calls) == 1:
            raise RuntimeError("metrics backend broke")

    async def scenario() -> None:
        async with running(model, on_batch=on_batch) as batcher:
            for caller in range(2):
                items = rows(caller, 1)
                result = await asyncio.wait_for(batcher.submit("encode", items), 1.0)
                check_own_rows("encode", items, result, model)
        assert calls == [1, 1]

    run(scenario)


# Callers that give up


def test_cancelled_waiting_request_uses_no_slot_and_breaks_nothing() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_batch_size=8) as batcher:
            first = await occupy(batcher, model)
            gone = submit(batcher, "encode", rows(1, 3))
            kept = submit(batcher, "encode", rows(2, 2))
            await asyncio.sleep(0.01)
            gone.cancel()
            await asyncio.sleep(0.01)
            model.gate.set()
            await asyncio.wait_for(first, WAIT)
            check_own_rows("encode", rows(2, 2), await asyncio.wait_for(kept, WAIT), model)
            with pytest.raises(asyncio.CancelledError):
                await gone
            assert batcher.queued == 0
        assert model.sizes() == [1, 2]
        assert 1 not in model.batches[1][1][:, 0]  # the cancelled rows were never computed

    run(scenario)


def test_timeout_while_queued_raises_timed_out_and_skips_the_rows() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model) as batcher:
            first = await occupy(batcher, model)
            late = submit(batcher, "decode", rows(1, 2), timeout=0.05)
            with pytest.raises(TimedOut, match="within 0.05 s"):
                await asyncio.wait_for(late, WAIT)
            model.gate.set()
            await asyncio.wait_for(first, WAIT)
            items = rows(2, 1)
            check_own_rows("decode", items, await batcher.submit("decode", items), model)
        assert model.sizes() == [1, 1]

    run(scenario)


def test_timeout_during_the_batch_leaves_the_batch_to_finish() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model) as batcher:
            model.gate.clear()
            impatient = submit(batcher, "encode", rows(1, 1), timeout=0.05)
            patient = submit(batcher, "encode", rows(2, 1))
            await model.wait_entered()
            with pytest.raises(TimedOut):
                await asyncio.wait_for(impatient, WAIT)
            model.gate.set()
            await asyncio.wait_for(patient, WAIT)

    run(scenario)


# The queue bound


def test_full_queue_refuses_at_once_and_accepts_again_after_draining() -> None:
    model = Model()

    async def scenario() -> None:
        async with running(model, max_queue=4) as batcher:
            first = await occupy(batcher, model)  # taken by the thread: not counted as queued
            waiting = [submit(batcher, "encode", rows(i, 2)) for i in (1, 2)]
            await asyncio.sleep(0.01)
            assert batcher.queued == 4
            with pytest.raises(Overloaded, match="AE_MAX_QUEUE=4") as refused:
                await asyncio.wait_for(batcher.submit("encode", rows(3, 1)), 1.0)
            assert refused.value.headers["Retry-After"]
            model.gate.set()
            await asyncio.wait_for(asyncio.gather(first, *waiting), WAIT)
            assert batcher.queued == 0
            items = rows(3, 4)
            check_own_rows("encode", items, await batcher.submit("encode", items), model)

    run(scenario)


# Shutting down


def test_stop_drains_queued_work_then_refuses() -> None:
    model = Model()

    async def scenario() -> None:
        batcher = MicroBatcher(model, METHODS, max_batch_size=2, max_delay_s=0.001, max_queue=64)
        batcher.start()
        first = await occupy(batcher, model)
        queued = [submit(batcher, "decode", rows(i, 1)) for i in range(5)]
        await asyncio.sleep(0.01)
        stopping = asyncio.create_task(batcher.stop())
        await asyncio.sleep(0.01)
        with pytest.raises(NotReady):
            await batcher.submit("decode", rows(9, 1))
        model.gate.set()
        await asyncio.wait_for(stopping, WAIT)
        results = await asyncio.wait_for(asyncio.gather(first, *queued), WAIT)
        for i, result in enumerate(results[1:]):
            check_own_rows("decode", rows(i, 1), result, model)
        with pytest.raises(NotReady):
            await batcher.submit("decode", rows(9, 1))

    run(scenario)


def test_submit_before_start_is_not_ready() -> None:
    batcher = MicroBatcher(Model(), METHODS, max_batch_size=2, max_delay_s=0, max_queue=8)
    with pytest.raises(NotReady):
        asyncio.run(batcher.submit("encode", rows(0, 1)))


def test_on_thread_start_runs_once_on_the_inference_thread_before_its_first_batch() -> None:
    started: list[int] = []
    batch_threads: list[int] = []

    class Recording(Model):
        def __call__(self, method: str, items: np.ndarray) -> tuple[tuple[np.ndarray, ...], str]:
            batch_threads.append(threading.get_ident())
            assert started, "a batch ran before on_thread_start"
            return super().__call__(method, items)

    async def scenario() -> None:
        batcher = MicroBatcher(
            Recording(), METHODS, max_batch_size=4, max_delay_s=0, max_queue=64,
            on_thread_start=lambda: started.append(threading.get_ident()),
        )  # fmt: skip
        batcher.start()
        for caller in range(3):
            await batcher.submit("encode", rows(caller, 2))
        await asyncio.wait_for(batcher.stop(), WAIT)

    run(scenario)
    assert len(started) == 1
    assert set(batch_threads) == set(started)
    assert started[0] != threading.get_ident()
