"""Answers of many frames: a strip of them side by side (PNG) and an animation (GIF)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from service.codec.png import encode_grey8


def strip_png(frames: np.ndarray) -> bytes:
    """(n, 28, 28) uint8 -> one (28, 28 n) PNG, frames left to right."""
    return encode_grey8(np.concatenate(list(frames), axis=1))


def gif_bytes(frames: np.ndarray, frame_ms: int = 100) -> bytes:
    """(n, 28, 28) uint8 -> an animated GIF that loops forever."""
    images = [Image.fromarray(frame) for frame in frames]  # mode L
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return out.getvalue()
