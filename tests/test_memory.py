"""Memory stays bounded: thousands of mixed good and bad requests, from a few client threads,
and the worker's resident memory after them within a stated bound of what it was after a
warm-up of the same mix. The worker is the shared `api` service (one worker: its own pid).
"""

from __future__ import annotations

import base64
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
from PIL import Image

from tests import hostile_files as files
from tests.hostile_corpus import JSON, PNG, multipart
from tests.support import Service

THREADS = 4
WARMUP = 600  # allocator arenas and caches filled by every kind of request first
REQUESTS = 3000
TIME_LIMIT_S = 120.0  # per round; the count is what is asserted on, not the speed
GROWTH_BOUND_MB = 25.0  # seen: +2 to +10 MB; a leak of 8 KB a request would pass 25

Send = Callable[[httpx.Client], httpx.Response]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _mix() -> list[tuple[str, int, Send]]:
    """(name, expected status, request): the good and the bad, big and small, every verb."""
    png = files.png()
    big = files.saved(Image.fromarray(files.digit(400)).convert("RGBA"))  # 400x400 RGBA
    embedding = [0.1] * 64
    form = {"content-type": "multipart/form-data; boundary=hostile"}
    raw = PNG
    long_row = b'{"embedding": [' + b",".join([b"0"] * 100_000) + b"]}"  # the corpus has 10x
    parts = multipart([("f", f"{i}.png", b"x") for i in range(10_000)])
    bomb = files.pixel_bomb(color=0, inflated=2 * files.GiB)
    return [
        ("encode", 200, lambda c: c.post("/encode", content=png, headers=raw)),
        ("encode-batch", 200, lambda c: c.post("/encode", json={"images": [_b64(png)] * 16})),
        ("encode-400px-rgba", 200, lambda c: c.post("/encode", content=big, headers=raw)),
        ("decode", 200, lambda c: c.post("/decode", json={"embedding": embedding})),
        ("decode-json", 200, lambda c: c.post("/decode", json={"embeddings": [embedding] * 8})),
        ("reconstruct-multipart", 200,
         lambda c: c.post("/reconstruct", files=[("d", ("d.png", png, "image/png"))] * 4)),
        ("interpolate-gif", 200, lambda c: c.post(
            "/interpolate?format=gif", json={"start": _b64(png), "end": embedding, "steps": 16})),
        ("truncated-png", 400, lambda c: c.post("/encode", content=png[:60], headers=raw)),
        ("jpeg-as-png", 400, lambda c: c.post("/reconstruct", content=files.jpeg(), headers=raw)),
        ("header-bomb", 413, lambda c: c.post("/encode", content=files.huge_header(), headers=raw)),
        ("idat-bomb", 400, lambda c: c.post("/encode", content=bomb, headers=raw)),
        ("bad-json", 400, lambda c: c.post("/decode", content=b"{", headers=JSON)),
        ("nan", 422, lambda c: c.post("/decode", content=b'{"embedding": [NaN]}', headers=JSON)),
        ("100000-numbers", 422, lambda c: c.post("/decode", content=long_row, headers=JSON)),
        ("steps-1e9", 422, lambda c: c.post(
            "/interpolate", json={"start": embedding, "end": embedding, "steps": 10**9})),
        ("multipart-10000", 400, lambda c: c.post("/encode", content=parts, headers=form)),
        ("no-content-type", 415, lambda c: c.post("/encode", content=png)),
    ]  # fmt: skip


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _round(url: str, count: int) -> Counter[tuple[str, int]]:
    """`count` requests of the mix, spread over THREADS clients; (name, status) -> times."""
    mix = _mix()
    seen: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + TIME_LIMIT_S

    def work(first: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            for i in range(first, count, THREADS):
                if time.monotonic() > deadline:
                    return
                name, _, send = mix[i % len(mix)]
                status = send(client).status_code
                with lock:
                    seen[(name, status)] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIME_LIMIT_S + 60)
    return seen


def test_rss_stays_bounded_under_mixed_traffic(api: Service) -> None:
    pid = api.process.pid
    started = _rss_mb(pid)
    warm = _round(api.url, WARMUP)
    before = _rss_mb(pid)
    seen = _round(api.url, REQUESTS)
    after = _rss_mb(pid)
    print(
        f"\nworker RSS: {started:.1f} MB at start, {before:.1f} MB after {sum(warm.values())} "
        f"warm-up requests, {after:.1f} MB after {sum(seen.values())} more "
        f"(growth {after - before:+.1f} MB, bound {GROWTH_BOUND_MB:.0f} MB)"
    )
    expected = {name: status for name, status, _ in _mix()}
    wrong = {key: n for key, n in seen.items() if key[1] != expected[key[0]]}
    assert not wrong, f"unexpected statuses: {wrong}"
    assert sum(seen.values()) >= REQUESTS * 0.9, f"only {sum(seen.values())} requests in time"
    assert after - before < GROWTH_BOUND_MB
    assert api.process.poll() is None
