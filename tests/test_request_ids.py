"""Request ids: one process never repeats one, and a forked worker does not share its parent's."""

from __future__ import annotations

import os

from service.fronts.request_ids import new_request_id


def test_ids_do_not_repeat_and_share_the_process_prefix() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert len({i[:12] for i in ids}) == 1


def test_a_forked_child_draws_its_own_prefix() -> None:
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report one id and leave at once
        os.write(write_end, new_request_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(child, 0)
    assert child_id[:12] != new_request_id()[:12]
