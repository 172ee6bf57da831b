"""Buffered metrics: the same exposition as observing one by one, and folded when they should be."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from service import metrics
from service.metrics import LATENCY_BUCKETS, STAGES, Metrics


def _histograms() -> tuple[CollectorRegistry, Histogram, Histogram]:
    registry = CollectorRegistry()
    one = Histogram("one_by_one", "h", ["route"], buckets=LATENCY_BUCKETS, registry=registry)
    many = Histogram("in_bulk", "h", ["route"], buckets=LATENCY_BUCKETS, registry=registry)
    return registry, one.labels("/x"), many.labels("/x")


def _samples(registry: CollectorRegistry, name: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name.removeprefix(name), sample.labels, sample.value)
        for family in registry.collect()
        if family.name == name
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


def test_observing_in_bulk_is_observing_one_by_one() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.exponential(0.01, 500),  # typical latencies
            np.asarray(LATENCY_BUCKETS),  # exactly on each bound: `le` includes it
            [0.0, -1.0, 50.0, 1e9],  # below, negative, past the last bound
        ]
    )
    registry, one, many = _histograms()
    for value in values:
        one.observe(float(value))
    metrics.observe_many(many, values)
    one_by_one, in_bulk = _samples(registry, "one_by_one"), _samples(registry, "in_bulk")
    assert [s for s in one_by_one if s[0] != "_sum"] == [s for s in in_bulk if s[0] != "_sum"]
    sums = [s[2] for s in (*one_by_one, *in_bulk) if s[0] == "_sum"]
    assert sums[0] == pytest.approx(sums[1], rel=1e-12)  # added up in another order


def _count(m: Metrics, route: str, status: str = "200") -> float | None:
    return m.registry.get_sample_value("ae_requests_total", {"route": route, "status": status})


def test_a_scrape_folds_what_is_buffered() -> None:
    async def serve(m: Metrics) -> bytes:
        m.request_started()
        m.request_started()
        m.observe_stages("/encode", 0.001, 0.002, 0.003, 0.004)
        m.request_finished("/encode", 200, 0.01)
        assert _count(m, "/encode") is None  # buffered, not yet in the registry
        return m.exposition()

    m = Metrics()
    text = asyncio.run(serve(m)).decode()
    assert 'ae_requests_total{route="/encode",status="200"} 1.0' in text
    assert "ae_in_flight_requests 1.0" in text  # one request still in flight
    for stage in STAGES:
        labels = {"route": "/encode", "stage": stage}
        assert m.registry.get_sample_value("ae_stage_duration_seconds_count", labels) == 1
    sums = [
        m.registry.get_sample_value(
            "ae_stage_duration_seconds_sum", {"route": "/encode", "stage": s}
        )
        for s in STAGES
    ]
    assert sums == pytest.approx([0.001, 0.002, 0.003, 0.004])


def test_buffered_figures_are_folded_soon_without_a_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "FLUSH_AFTER_S", 0.05)

    async def serve(m: Metrics) -> None:
        m.request_started()
        m.request_finished("/decode", 200, 0.01)
        await asyncio.sleep(0.5)

    m = Metrics()
    asyncio.run(serve(m))
    assert _count(m, "/decode") == 1


def test_many_buffered_figures_are_folded_at_once() -> None:
    async def serve(m: Metrics) -> None:
        for _ in range(metrics.FLUSH_AT):
            m.request_started()
            m.request_finished("/reconstruct", 503, 0.001)

    m = Metrics()
    asyncio.run(serve(m))
    assert _count(m, "/reconstruct", "503") == metrics.FLUSH_AT


def test_outside_an_event_loop_figures_are_folded_at_once() -> None:
    m = Metrics()
    m.request_started()
    m.request_finished("/encode", 400, 0.001)
    assert _count(m, "/encode", "400") == 1
