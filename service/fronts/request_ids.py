"""Request ids, for `X-Request-ID` and problem documents: unique across processes and replicas
without a syscall per request (uuid4 makes one). A random prefix per process, then a counter;
a forked child draws its own prefix."""

from __future__ import annotations

import itertools
import os


class _Ids:
    def __init__(self) -> None:
        self.prefix = os.urandom(6).hex()
        self.counter = itertools.count(1)


_ids = _Ids()


def new_request_id() -> str:
    return f"{_ids.prefix}{next(_ids.counter):010x}"


def _draw_again() -> None:
    global _ids
    _ids = _Ids()


os.register_at_fork(after_in_child=_draw_again)
