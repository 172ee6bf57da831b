"""/interpolate encodes its image endpoints and decodes the path in two batches. A hot swap in
between would decode one model's embeddings with another model: the pair is run again. The
swap is simulated here (a real one cannot be timed between two batches)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest

from service.core.batching import Timing
from service.core.inference import Frames, Method
from service.errors import NotReady
from service.fronts.native import routes

DIM = 4


class SwappingInference:
    """Encodes with the models named in `encoders`, one per call; always decodes with "B"."""

    def __init__(self, encoders: list[str]) -> None:
        self.encoders: Iterator[str] = iter(encoders)
        self.calls = 0

    async def encode(self, images: np.ndarray) -> tuple[np.ndarray, Timing]:
        self.calls += 1
        return np.ones((len(images), DIM), np.float32), Timing(0.0, 0.0, 1, next(self.encoders))

    async def interpolate(
        self, start: np.ndarray, end: np.ndarray, steps: int, method: Method
    ) -> tuple[Frames, Timing]:
        frames = Frames(np.linspace(0, 1, steps), np.zeros((steps, DIM)), np.zeros((steps, 2, 2)))
        return frames, Timing(0.0, 0.0, steps, "B")


def frames_for(inference: SwappingInference) -> tuple[Frames, Timing]:
    rt = SimpleNamespace(inference=inference)
    endpoints: list[routes.Endpoint] = [
        ("start", np.zeros((28, 28), np.float32), True),
        ("end", np.ones(DIM, np.float32), False),
    ]
    return asyncio.run(routes._frames(rt, endpoints, 3, "linear"))  # type: ignore[arg-type]


def test_a_swap_between_the_batches_runs_the_pair_again() -> None:
    inference = SwappingInference(["A", "B"])
    frames, timing = frames_for(inference)
    assert inference.calls == 2
    assert timing.served_by == "B" and len(frames.t) == 3


def test_no_swap_runs_once() -> None:
    inference = SwappingInference(["B"])
    _, timing = frames_for(inference)
    assert inference.calls == 1 and timing.served_by == "B"


def test_swaps_that_keep_coming_answer_503() -> None:
    with pytest.raises(NotReady, match="swapped"):
        frames_for(SwappingInference(["A", "A"]))
