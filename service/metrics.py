"""Prometheus metrics, per app, with where each request's time went.

One worker: metrics live in the app's own registry. Several workers (`AE_WORKERS` > 1):
`python -m service` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start,
every worker writes there, and `/metrics` on any worker reports all of them together.
"""

from __future__ import annotations

import functools
import os

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

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        counter, histogram = self._request_children(route, status)
        counter.inc()
        histogram.observe(seconds)

    def observe_stages(
        self, route: str, decode: float, queue: float, inference: float, encode: float
    ) -> None:
        for child, seconds in zip(
            self._stage_children(route), (decode, queue, inference, encode), strict=True
        ):
            child.observe(seconds)

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
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
