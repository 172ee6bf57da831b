"""The inference thread runs at a lower CPU priority than the event loop (runtime/priority.py).

Linux only: elsewhere the nice value belongs to the whole process and the service leaves it.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import httpx
import pytest

from service.runtime.priority import MAX_NICE, lower_this_thread
from tests.support import Service

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")
SAMPLE = Path(__file__).resolve().parent.parent / "service" / "static" / "samples" / "7.png"


def nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def nice_in_a_thread(by: int) -> int:
    """Lower a fresh thread by `by` and return the nice value it ends with."""
    seen: list[int] = []

    def body() -> None:
        lower_this_thread(by)
        seen.append(nice_of(threading.get_native_id()))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(10)
    return seen[0]


def test_only_the_calling_thread_is_lowered() -> None:
    before = nice_of(threading.get_native_id())
    assert nice_in_a_thread(3) == min(before + 3, MAX_NICE)
    assert nice_of(threading.get_native_id()) == before


def test_nice_stops_at_19() -> None:
    assert nice_in_a_thread(40) == MAX_NICE


def test_zero_leaves_the_thread_as_it_is() -> None:
    assert nice_in_a_thread(0) == nice_of(threading.get_native_id())


def _thread_nices(pid: int) -> dict[int, int]:
    """Every thread of `pid` and its nice value, from /proc (field 19 of each task's stat)."""
    nices = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rpartition(")")[2].split()
        nices[int(task.name)] = int(fields[16])  # fields after the name start at the 3rd
    return nices


def test_the_service_runs_its_batches_below_the_event_loop(
    api: Service, http: httpx.Client
) -> None:
    answer = http.post(
        "/reconstruct", content=SAMPLE.read_bytes(), headers={"content-type": "image/png"}
    )
    assert answer.status_code == 200  # the inference thread exists once it ran a batch
    assert http.get("/model").json()["batching"]["inference_nice"] == 10
    nices = _thread_nices(api.process.pid)
    loop = nices[api.process.pid]  # the main thread runs the event loop
    assert min(loop + 10, MAX_NICE) in nices.values(), nices
