"""The inference thread's place in the CPU queue: behind the event loop.

On a machine with fewer spare cores than busy threads, the kernel shares a core between the
event loop, the inference thread and whatever else turns requests around there (a proxy, the
clients, other workers). A batch is bulk work that nobody waits on until it ends; the event
loop's turns are what every connection waits on. With the inference thread at a lower
priority, the kernel runs the loop first when both want a core, and batches run on the time
left over (they also grow fuller, which costs the model less per digit). Measured on a 2-core
machine with wrk on the same cores: 64 connections to /reconstruct went from about 7,400 to
8,700 requests/s at nice 10 (alternating runs); at nice 5 the gain was within the noise. Part of
it is wrk's: raising wrk's priority instead, with the service as before, gave 8%.

A thread at nice 10 still gets about a tenth of a core that two threads want, so batches slow
down under contention but are never starved. Where cores are to spare, nothing changes.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger("service")
MAX_NICE = 19


def lower_this_thread(by: int) -> None:
    """Raise the calling thread's nice value by `by` (capped at 19). Linux only: there, the
    nice value is per thread; elsewhere it is the whole process's, so nothing is done."""
    if by <= 0 or sys.platform != "linux":
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(
            os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + by, MAX_NICE)
        )
    except OSError as exc:  # a sandbox may refuse it; the service runs as before
        log.warning("could not lower the inference thread's priority (%s)", exc)
