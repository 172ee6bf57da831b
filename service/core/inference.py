"""The four verbs as plain async code over arrays: no HTTP here.

Each returns its result with the `Timing` of its batch, so the caller can report where the
time went.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from service.codec.digits import are_png_items
from service.core.batching import MicroBatcher, Timing

Method = Literal["linear", "slerp"]
DEFAULT_STEPS = 10
MIN_STEPS = 2  # both ends
MAX_ABS_EMBEDDING = 1e4  # far outside anything the encoder produces; keeps float32 finite


@dataclass(frozen=True, slots=True)
class Frames:
    t: np.ndarray  # (steps,)
    embeddings: np.ndarray  # (steps, D) float32
    images: np.ndarray  # (steps, 28, 28) uint8


class Inference:
    def __init__(self, batcher: MicroBatcher, timeout: float) -> None:
        self.batcher = batcher
        self.timeout = timeout

    async def encode(self, images: np.ndarray) -> tuple[np.ndarray, Timing]:
        """(k, 28, 28) float32 or uint8, or (k, 2) `codec.png_items` (PNG files or pixels the
        batch reads itself) -> (k, D) float32."""
        method, items = _model_input("encode", images)
        (embeddings,), timing = await self.batcher.submit(method, items, self.timeout)
        return embeddings, timing

    async def decode(self, embeddings: np.ndarray) -> tuple[np.ndarray, Timing]:
        """(k, D) float32 -> (k, 28, 28) uint8."""
        (images,), timing = await self.batcher.submit("decode", embeddings, self.timeout)
        return images, timing

    async def reconstruct(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, Timing]:
        """(k, 28, 28) float32 or uint8, or (k, 2) `codec.png_items` -> (k, 28, 28) uint8 and
        each one's MSE (k,)."""
        method, items = _model_input("reconstruct", images)
        (pixels, mse), timing = await self.batcher.submit(method, items, self.timeout)
        return pixels, mse, timing

    async def interpolate(
        self, start: np.ndarray, end: np.ndarray, steps: int, method: Method
    ) -> tuple[Frames, Timing]:
        """Two embeddings (D,) -> `steps` frames from start to end, both ends included."""
        t = np.linspace(0.0, 1.0, steps)  # (steps,)
        path = interpolate_path(start, end, t, method)  # (steps, D)
        images, timing = await self.decode(path)
        return Frames(t, path, images), timing


def _model_input(name: str, images: np.ndarray) -> tuple[str, np.ndarray]:
    """The model method for these images, and the images as it takes them: `png_items` (PNG
    files, and pixels the fronts made items of) go to the method that reads them in the batch;
    other 8-bit pixels (where the model decodes no PNGs) become [0, 1] here exactly as the batch
    and the codec read an 8-bit grey PNG, so that pixels and their PNG file get the same answer,
    bit for bit."""
    if are_png_items(images):
        return f"{name}_png", images
    if images.dtype == np.uint8:
        return name, np.multiply(images, np.float32(1 / 255), dtype=np.float32)  # (k, 28, 28)
    return name, images


def steps_problem(steps: int, max_steps: int) -> str | None:
    """What is wrong with asking for `steps` frames, if anything."""
    if MIN_STEPS <= steps <= max_steps:
        return None
    return f"{steps} frames asked; between {MIN_STEPS} and {max_steps} (AE_MAX_STEPS)"


def interpolate_path(a: np.ndarray, b: np.ndarray, t: np.ndarray, method: Method) -> np.ndarray:
    """(D,), (D,), (steps,) -> (steps, D) float32; t=0 gives exactly a, t=1 exactly b."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if method == "slerp":
        path = _slerp(a64, b64, t)
    else:
        path = (1.0 - t)[:, None] * a64 + t[:, None] * b64  # (steps, D)
    path = path.astype(np.float32)
    path[0], path[-1] = a, b  # the ends are the endpoints themselves, not a rounding of them
    return path


def _slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Along the great circle between the directions of a and b (as in latent-space walks)."""
    line: np.ndarray = (1.0 - t)[:, None] * a + t[:, None] * b  # (steps, D)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0:
        return line
    omega = np.arccos(np.clip(np.dot(a, b) / norms, -1.0, 1.0))
    if np.sin(omega) < 1e-6:  # (anti)parallel: the circle is not defined, keep the line
        return line
    wa = np.sin((1.0 - t) * omega) / np.sin(omega)  # (steps,)
    wb = np.sin(t * omega) / np.sin(omega)  # (steps,)
    arc: np.ndarray = wa[:, None] * a + wb[:, None] * b  # (steps, D)
    return arc
