"""The answers checked: each call to both services, a concurrent burst that the device's service
batches, and the CPU's service against the model file run by torch outside any service."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from scripts.device_check import calls as calls_
from scripts.device_check.calls import Call, Digits
from scripts.device_check.compare import Answer, Diff, compare, frames

BURST_REQUESTS = 256  # concurrent /reconstruct requests, each digit four times
BURST_THREADS = 64


@dataclass
class Outcome:
    name: str
    diff: Diff = field(default_factory=Diff)
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.diff.passed

    @property
    def measured(self) -> str:
        parts = (self.diff.summary(), self.note)
        return "; ".join(part for part in parts if part and part != "equal") or "equal"


def run_calls(cpu: httpx.Client, dev: httpx.Client, calls: list[Call]) -> list[Outcome]:
    outcomes = []
    for call in calls:
        outcome = Outcome(call.name)
        if call.error:
            outcome.diff.problems.append(f"not sent: {call.error}")
        else:
            try:
                outcome.diff = compare(calls_.send(cpu, call), calls_.send(dev, call))
            except (httpx.HTTPError, ValueError, KeyError, OSError) as exc:
                outcome.diff.problems.append(f"{type(exc).__name__}: {exc}")
        outcomes.append(outcome)
    return outcomes


def model_outcome(cpu: dict[str, Any], dev: dict[str, Any], device: str) -> Outcome:
    """GET /model: the device's service runs on the device asked for, the same file as the CPU's."""
    outcome = Outcome("GET /model: device and model file")
    diff = outcome.diff
    wanted = device.split(":")[0]
    if wanted != "auto":
        diff.equal(wanted, str(dev.get("device", "")).split(":")[0], "device")
    diff.equal(cpu.get("device"), "cpu", "the reference's device")
    diff.equal(cpu.get("file_sha256"), dev.get("file_sha256"), "file_sha256")
    outcome.note = f"device {dev.get('device')}, model {dev.get('name')} {dev.get('version')}"
    return outcome


def burst(cpu: httpx.Client, dev: httpx.Client, digits: Digits) -> Outcome:
    """Many /reconstruct requests at once, so the device's service merges them into batches (its
    /metrics says how large); each answer against the CPU's for the same digit, asked alone."""
    outcome = Outcome(f"{BURST_REQUESTS} concurrent /reconstruct, batched on the device")
    pngs = digits.shifted
    jobs = [calls_.Call(f"digit {i}", "POST", "/reconstruct",
                        {"content": pngs[i % len(pngs)], "headers": calls_.PNG})
            for i in range(BURST_REQUESTS)]  # fmt: skip
    before = _batches(dev)
    with ThreadPoolExecutor(BURST_THREADS) as pool:
        answers = list(pool.map(lambda call: _send_alone(dev, call), jobs))
    after = _batches(dev)
    reference = [calls_.send(cpu, job) for job in jobs[: len(pngs)]]
    for i, answer in enumerate(answers):
        one = compare(reference[i % len(pngs)], answer)
        _merge(outcome.diff, one, f"request {i}")
    count, total = after[0] - before[0], after[1] - before[1]
    outcome.note = (
        f"{count} forward passes, {total / count:.1f} digits each on average" if count else ""
    )
    return outcome


def _send_alone(client: httpx.Client, call: Call) -> Answer:
    """`call` on a connection of its own. Threads sharing one client's pool met its connections
    that the server had closed after their keep-alive timeout, and one thread's clean-up closed
    a socket another was reading (httpx: `ReadError: [Errno 9] Bad file descriptor`)."""
    with httpx.Client(base_url=client.base_url, timeout=client.timeout) as own:
        return calls_.send(own, call)


def artifact_outcome(cpu: httpx.Client, model_path: Path, digits: Digits) -> Outcome:
    """The CPU's service (its rebuilt layers, in-batch PNG decoding, padding) against the model
    file's own graph run here by torch: what makes the comparison mean something when the device
    under check is the CPU too."""
    import torch

    from service.runtime.model import load_model

    outcome = Outcome("the CPU's service against the model file run by torch, 10 digits")
    model = load_model(model_path, torch.device("cpu"))
    x = torch.from_numpy(digits.arrays.astype(np.float32) / 255)  # (10, 28, 28)
    with torch.inference_mode():
        z = model.module.encode(x[:, None]).numpy()  # (10, D)
        y = model.module(x[:, None])[:, 0]  # (10, 28, 28)
        mse = (y - x).square().mean(dim=(1, 2)).numpy()  # (10,)
        pixels = (y.clamp(0, 1) * 255).numpy()  # (10, 28, 28), unrounded
    files = [("images", (f"{i}.png", png, "image/png")) for i, png in enumerate(digits.pngs)]
    encoded = cpu.post("/encode", files=files).json()
    redrawn = cpu.post("/reconstruct", files=files).json()
    served = np.concatenate([frames(base64.b64decode(image)) for image in redrawn["images"]])
    outcome.diff.embeddings(z, np.asarray(encoded["embeddings"]), "embeddings")
    outcome.diff.grey(pixels, served, "images")
    outcome.diff.close(mse, np.asarray(redrawn["mse"]), "mse")
    return outcome


def _merge(into: Diff, one: Diff, where: str) -> None:
    into.kinds |= one.kinds
    into.pixels += one.pixels
    into.pixels_far += one.pixels_far
    into.pixel_max = max(into.pixel_max, one.pixel_max)
    into.mse = max(into.mse, one.mse)
    into.problems += [f"{where}: {problem}" for problem in one.problems]


def _batches(client: httpx.Client) -> tuple[float, float]:
    """(forward passes, digits) of /reconstruct's methods so far, from /metrics."""
    count = total = 0.0
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name != "ae_batch_size":
            continue
        for sample in family.samples:
            if not sample.labels.get("method", "").startswith("reconstruct"):
                continue
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return count, total
