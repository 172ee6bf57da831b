"""What the verbs that return more than one thing give back."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from digit_ae_client import images


@dataclass(frozen=True, eq=False)
class Reconstruction:
    """The model's redrawing of each input (28×28 grey) and its mean squared error."""

    images: list[Image.Image]
    mse: list[float]


@dataclass(frozen=True, eq=False)
class Interpolation:
    """`steps` frames from the start's reconstruction to the end's, with their embeddings."""

    frames: list[Image.Image]
    embeddings: np.ndarray  # (steps, D) float32
    t: list[float]
    method: str

    def save_gif(self, path: str | os.PathLike[str], frame_ms: int = 100) -> None:
        """An animated GIF that loops forever (the same as the service's `?format=gif`)."""
        images.save_gif(self.frames, path, frame_ms)

    def save_strip(self, path: str | os.PathLike[str]) -> None:
        """One PNG with the frames left to right (the same as the service's `?format=png`)."""
        images.save_strip(self.frames, path)
