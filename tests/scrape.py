"""Read one sample from a service's `/metrics` (Prometheus text)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def metric(client: httpx.Client, sample: str, **labels: str) -> float:
    """The value of `sample` (e.g. `ae_batch_size_count`) with these labels; 0 when absent."""
    text = client.get("/metrics").text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total
