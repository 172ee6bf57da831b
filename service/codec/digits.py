"""PNG files to model input.

Any PNG a client has (1-bit to 16-bit, grey, palette, RGB, with or without alpha, any size up to
the limit) becomes what the model was trained on: 28x28 float32 in [0, 1], light ink on a dark
background, the digit fitted and centred the way MNIST was made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from service.codec.png import PngHeader, canonical_grey8, decode_pixels, read_header
from service.errors import ServiceError, ValidationFailed

SIDE = 28
DIGIT_BOX = 20  # MNIST fitted each digit in 20x20, then centred it by mass in 28x28
INK_THRESHOLD = 0.1
INLINE_PIXELS = 64 * 64  # decode bigger images off the event loop

Payload = tuple[str, bytes]  # (where in the request it came from, PNG bytes)
Invert = Literal["auto", "true", "false"]
Fit = Literal["mnist", "stretch"]


@dataclass(frozen=True, slots=True)
class ImageOptions:
    invert: Invert = "auto"
    fit: Fit = "mnist"


# Digits the model's batch decodes itself (see `serving.to_model_input`) travel as the rows of
# an object array (k, 2): a PNG file, as `png.canonical_grey8` rewrote it, and its `invert`
# option as a number. A structured dtype would read better, but numpy concatenates 32 of those
# in 160 µs against 11 µs for these, and the event loop does it for every batch.
INVERT_CODES: dict[Invert, int] = {"false": 0, "true": 1, "auto": 2}


def png_items(count: int) -> np.ndarray:
    return np.empty((count, 2), object)  # (k, 2): file, invert code


def are_png_items(items: np.ndarray) -> bool:
    return items.dtype == object


def model_png(data: bytes, header: PngHeader, options: ImageOptions) -> tuple[bytes, int] | None:
    """A row of `png_items` for a 28x28 8-bit grey PNG, checked; None for any other image,
    which is decoded here instead (`prepare`)."""
    if not (header.is_plain_grey8 and header.width == header.height == SIDE):
        return None
    return canonical_grey8(data, header), INVERT_CODES[options.invert]


def is_cheap(header: PngHeader) -> bool:
    """Small plain greyscale files decode in microseconds: fine on the event loop."""
    return header.is_plain_grey8 and header.width * header.height <= INLINE_PIXELS


def decode_image(data: bytes, options: ImageOptions, max_side: int) -> np.ndarray:
    """PNG bytes -> (28, 28) float32 in [0, 1], ready for the model."""
    header = read_header(data, max_side)
    return prepare(data, header, options)


def prepare(data: bytes, header: PngHeader, options: ImageOptions) -> np.ndarray:
    grey = decode_pixels(data, header)  # (H, W) float32 in [0, 1]
    if _should_invert(grey, options.invert):
        grey = 1.0 - grey
    if grey.shape != (SIDE, SIDE):
        grey = fit_mnist(grey) if options.fit == "mnist" else _resize(grey, SIDE, SIDE)
    return grey


def _should_invert(grey: np.ndarray, invert: Invert) -> bool:
    if invert != "auto":
        return invert == "true"
    # Most of the frame light means dark ink on paper (a median, without the sort). The frame's
    # count is the whole image's less the inside's: two C calls, no copies.
    height, width = grey.shape
    light = int(np.count_nonzero(grey > 0.5)) - int(np.count_nonzero(grey[1:-1, 1:-1] > 0.5))
    frame = grey.size - max(height - 2, 0) * max(width - 2, 0)
    return bool(2 * light > frame)


def fit_mnist(grey: np.ndarray) -> np.ndarray:
    """Crop to the ink, fit in 20x20 keeping aspect, centre by centre of mass in 28x28."""
    rows = np.flatnonzero((grey > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((grey > INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        return _resize(grey, SIDE, SIDE)  # nothing drawn: keep what there is
    crop = grey[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w)
    scale = DIGIT_BOX / max(crop.shape)
    height = max(1, round(crop.shape[0] * scale))
    width = max(1, round(crop.shape[1] * scale))
    digit = _resize(crop, height, width)  # (h', w') with max(h', w') == 20
    out = np.zeros((SIDE, SIDE), np.float32)
    top, left = _mass_offset(digit)
    out[top : top + height, left : left + width] = digit
    return out


def _mass_offset(digit: np.ndarray) -> tuple[int, int]:
    height, width = digit.shape
    total = float(digit.sum())
    if total <= 0:
        return (SIDE - height) // 2, (SIDE - width) // 2
    cy = float((digit.sum(axis=1) * np.arange(height)).sum()) / total
    cx = float((digit.sum(axis=0) * np.arange(width)).sum()) / total
    centre = (SIDE - 1) / 2
    top = min(max(round(centre - cy), 0), SIDE - height)
    left = min(max(round(centre - cx), 0), SIDE - width)
    return top, left


def _resize(grey: np.ndarray, height: int, width: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32))  # mode F
    resized = image.resize((width, height), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


async def model_input(
    payloads: Sequence[Payload],
    options: ImageOptions,
    max_side: int,
    pool: Executor,
    model_decodes_png: bool,
) -> np.ndarray:
    """PNG files -> what the model's batch takes: (k, 2) png_items when every file is a
    28x28 8-bit grey PNG and the model can decode them, off the event loop; else the decoded
    (k, 28, 28) float32 of `decode_images`."""
    if not model_decodes_png:
        return await decode_images(payloads, options, max_side, pool)
    items = png_items(len(payloads))  # (k, 2)
    for i, (name, data) in enumerate(payloads):
        try:
            item = model_png(data, read_header(data, max_side), options)
        except ServiceError as exc:
            raise _named(exc, name) from None
        if item is None:
            return await decode_images(payloads, options, max_side, pool)
        items[i] = item
    return items


async def decode_images(
    payloads: Sequence[Payload], options: ImageOptions, max_side: int, pool: Executor
) -> np.ndarray:
    """PNG files -> (k, 28, 28) float32. Small grey files inline, the rest in the codec pool."""
    loop = asyncio.get_running_loop()
    images = []
    for name, data in payloads:
        try:
            header = read_header(data, max_side)
            if is_cheap(header):
                images.append(prepare(data, header, options))
            else:
                images.append(await loop.run_in_executor(pool, prepare, data, header, options))
        except ServiceError as exc:
            raise _named(exc, name) from None
    return np.stack(images)  # (k, 28, 28)


def _named(exc: ServiceError, name: str) -> ServiceError:
    if isinstance(exc, ValidationFailed) or name == "body":
        return exc
    exc.detail = f"{name}: {exc.detail}"
    exc.args = (exc.detail,)
    return exc
