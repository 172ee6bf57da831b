"""Prometheus metrics, per app, with where each request's time went.

One worker: metrics live in the app's own registry. Several workers (`AE_WORKERS` > 1):
`python -m service` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start,
every worker writes there, and `/metrics` on any worker reports all of them together.

A request's figures are buffered and folded into the registry in bulk: when `/metrics` is
scraped, `FLUSH_AFTER_S` after the first one buffered, or once `FLUSH_AT` are waiting. Observed
one by one, the five histograms, two counters and the in-flight gauge of a request took 18 us
of its event-loop time (of 140 for a /reconstruct), each through a lock. With several workers,
another worker's figures reach `/metrics` within `FLUSH_AFTER_S`. The buffer belongs to the
event loop: requests are observed, and the buffer folded, only there (no lock).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
from collections.abc import Sequence

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
STAGES = ("decode", "queue", "inference", "encode")
FLUSH_AFTER_S = 1.0
FLUSH_AT = 1024  # buffered requests


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ae_requests", "Requests answered, by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "ae_request_duration_seconds", "Whole-request latency by route", ["route"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.stages = Histogram(
            "ae_stage_duration_seconds",
            "Time per stage of a request: decode (PNG/JSON in), queue (waiting for the model), "
            "inference (the batch's forward pass; for 28x28 grey PNGs, their decoding too), "
            "encode (PNG/JSON out)",
            ["route", "stage"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_size = Histogram(
            "ae_batch_size", "Items per forward pass, by model method", ["method"],
            buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "ae_queue_depth", "Items waiting for the model", registry=r, multiprocess_mode="livesum"
        )
        self.in_flight = Gauge(
            "ae_in_flight_requests", "Requests being handled", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.model_info = Gauge(
            "ae_model_info", "The live model (value 1)",
            ["name", "version", "weights_sha256", "file_sha256", "device"],
            registry=r, multiprocess_mode="liveall",
        )  # fmt: skip
        self._model_labels: tuple[str, ...] = ()
        self.reloads = Counter(
            "ae_model_reloads", "Model reloads by outcome", ["outcome"], registry=r
        )
        self._in_flight = 0
        self._requests: list[tuple[str, int, float]] = []  # route, status, seconds
        self._stages: list[tuple[str, tuple[float, ...]]] = []  # route, seconds per STAGES
        self._flush: asyncio.TimerHandle | None = None

    def request_started(self) -> None:
        self._in_flight += 1

    def request_finished(self, route: str, status: int, seconds: float) -> None:
        self._in_flight -= 1
        self._requests.append((route, status, seconds))
        self._buffered()

    def observe_stages(
        self, route: str, decode: float, queue: float, inference: float, encode: float
    ) -> None:
        self._stages.append((route, (decode, queue, inference, encode)))
        self._buffered()

    def _buffered(self) -> None:
        if len(self._requests) >= FLUSH_AT:
            self.flush()
        elif self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # called outside the service's loop: nothing would flush
                self.flush()
                return
            self._flush = loop.call_later(FLUSH_AFTER_S, self.flush)

    def flush(self) -> None:
        """Fold the buffered figures into the registry (and, with several workers, its files)."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        requests, self._requests = self._requests, []
        stages, self._stages = self._stages, []
        self.in_flight.set(self._in_flight)
        latencies: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
        for route, status, seconds in requests:
            latencies[route, status].append(seconds)
        for (route, status), values in latencies.items():
            counter, histogram = self._request_children(route, status)
            counter.inc(len(values))
            observe_many(histogram, values)
        by_route: dict[str, list[tuple[float, ...]]] = collections.defaultdict(list)
        for route, times in stages:
            by_route[route].append(times)
        for route, rows in by_route.items():
            columns = np.asarray(rows).T  # (stages, requests)
            for child, values in zip(self._stage_children(route), columns, strict=True):
                observe_many(child, values)

    # `labels()` locks and hashes on every call; a route's children are looked up once.

    @functools.cache  # noqa: B019 -- one Metrics per app, living as long as the app
    def _request_children(self, route: str, status: int) -> tuple[Counter, Histogram]:
        return self.requests.labels(route, str(status)), self.latency.labels(route)

    @functools.cache  # noqa: B019
    def _stage_children(self, route: str) -> tuple[Histogram, ...]:
        return tuple(self.stages.labels(route, stage) for stage in STAGES)

    def observe_batch(self, method: str, size: int, queued_after: int) -> None:
        self.batch_size.labels(method).observe(size)
        self.queue_depth.set(queued_after)

    def set_model(self, name: str, version: str, weights: str, file: str, device: str) -> None:
        if self._model_labels and multiprocess_dir():
            self.model_info.labels(*self._model_labels).set(0)  # no clear() across processes
        elif self._model_labels:
            self.model_info.clear()
        self._model_labels = (name, version, weights, file, device)
        self.model_info.labels(*self._model_labels).set(1)

    def exposition(self) -> bytes:
        self.flush()
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def observe_many(histogram: Histogram, values: Sequence[float] | np.ndarray) -> None:
    """`histogram.observe(v)` for every v, with one increment per bucket. prometheus_client has
    no call for many observations, so this adds to the histogram's own bucket and sum values,
    as `observe` does (tests/test_metrics.py holds the two to the same exposition)."""
    bounds = histogram._upper_bounds  # ends with +Inf
    index = np.searchsorted(bounds, values)  # the first bound >= v: observe's `v <= bound`
    counts = np.bincount(index, minlength=len(bounds))[: len(bounds)]  # NaN is in no bucket
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(int(count))
    histogram._sum.inc(float(np.sum(values)))
