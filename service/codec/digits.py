"""Digits from any PNG: the file's grey pixels made what the model was trained on.

Any PNG a client has (1-bit to 16-bit, grey, palette, RGB, with or without alpha, any size up to
the limit) becomes 28x28 float32 in [0, 1], light ink on a dark background, the digit fitted and
centred the way MNIST was made. The way from bytes to the batch runs one way: `png` reads the
header (`read_header`) and the pixels (`decode_grey`, (H, W) uint8); this module decides where
each file is decoded (inline, in the codec pool, or in the model's batch, for which `png`
rewrites it: `canonical_grey8`), and turns the pixels into the model's input: polarity
(`_should_invert`), then the fit (`fit_mnist`). A big picture stays uint8 until its ink is
cropped out, and only the crop becomes float32, so a 1080x1080 canvas costs about what its ink
does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from service.codec.png import PngHeader, canonical_grey8, decode_grey, read_header
from service.errors import ServiceError, ValidationFailed

SIDE = 28
DIGIT_BOX = 20  # MNIST fitted each digit in 20x20, then centred it by mass in 28x28
INK_THRESHOLD = 0.1
INLINE_PIXELS = 64 * 64  # decode bigger images off the event loop
PILLOW_RESIZE_UP_TO = 200 * 200  # pixels; above, matrix products are quicker (`_resized_levels`)

Payload = tuple[str, bytes]  # (where in the request it came from, PNG bytes)
Invert = Literal["auto", "true", "false"]
Fit = Literal["mnist", "stretch"]


@dataclass(frozen=True, slots=True)
class ImageOptions:
    invert: Invert = "auto"
    fit: Fit = "mnist"


# Digits the model's batch reads itself (see `serving.to_model_input`) travel as the rows of an
# object array (k, 2): the digit's bytes and a code saying what they are. Either a PNG file, as
# `png.canonical_grey8` rewrote it, with its `invert` option as the code; or 28x28 8-bit pixels
# as they are, row by row (`RAW_PIXELS`: MNIST polarity, never inverted), so that pixels sent
# as a tensor share the batches of the PNG files. A structured dtype would read better, but
# numpy concatenates 32 of those in 160 µs against 11 µs for these, and the event loop does it
# for every batch.
INVERT_CODES: dict[Invert, int] = {"false": 0, "true": 1, "auto": 2}
RAW_PIXELS = 3


def png_items(count: int) -> np.ndarray:
    return np.empty((count, 2), object)  # (k, 2): bytes, code


def pixel_items(images: np.ndarray) -> np.ndarray:
    """(k, 28, 28) uint8 -> (k, 2) `png_items` rows that hold the pixels as they are."""
    items = png_items(len(images))  # (k, 2)
    for i, image in enumerate(images):  # one by one: numpy's bytes arrays drop trailing zeros
        items[i] = image.tobytes(), RAW_PIXELS
    return items


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
    """A PNG whose header was read -> (28, 28) float32 in [0, 1]."""
    grey = decode_grey(data, header)  # (H, W) uint8
    invert = _should_invert(grey, options.invert)
    if grey.shape == (SIDE, SIDE):
        return _levels(grey, invert)
    if options.fit == "stretch":
        return _resized_levels(grey, SIDE, SIDE, invert)
    return fit_mnist(grey, invert)


def _levels(grey: np.ndarray, invert: bool) -> np.ndarray:
    """(h, w) uint8 -> (h, w) float32 in [0, 1] as the model sees it (the batch decodes 28x28
    files to the same bits: `runtime/serving.py`)."""
    x = grey.astype(np.float32) * np.float32(1 / 255)
    return 1.0 - x if invert else x


# The grey levels that are ink once the model's input is made of them (above INK_THRESHOLD),
# from the same float32 arithmetic: 26 and up light on dark, 229 and down dark on light.
_SCALE = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
INK_FROM = int(np.flatnonzero(_SCALE > INK_THRESHOLD)[0])
INK_UP_TO = int(np.flatnonzero(1.0 - _SCALE > INK_THRESHOLD)[-1])


def _should_invert(grey: np.ndarray, invert: Invert) -> bool:
    if invert != "auto":
        return invert == "true"
    # Most of the frame light (over one half: 128 and up) means dark ink on paper (a median,
    # without the sort).
    height, width = grey.shape
    if min(height, width) <= 2:
        edges = [grey]  # all frame
    else:  # top and bottom rows, then the columns between them
        edges = [grey[[0, -1]], grey[1:-1, 0], grey[1:-1, -1]]
    light = sum(int(np.count_nonzero(edge > 127)) for edge in edges)
    return bool(2 * light > sum(edge.size for edge in edges))


def _ink(grey: np.ndarray, invert: bool) -> np.ndarray:
    return grey <= INK_UP_TO if invert else grey >= INK_FROM  # (h, w) bool


def fit_mnist(grey: np.ndarray, invert: bool) -> np.ndarray:
    """(H, W) uint8 -> (28, 28) float32: crop to the ink, fit in 20x20 keeping aspect, centre
    by centre of mass in 28x28. Only the crop becomes float32."""
    rows = np.flatnonzero(_ink(grey, invert).any(axis=1))
    if rows.size == 0:
        return _resized_levels(grey, SIDE, SIDE, invert)  # nothing drawn: keep what there is
    band = grey[rows[0] : rows[-1] + 1]  # (h, W)
    cols = np.flatnonzero(_ink(band, invert).any(axis=0))
    crop = band[:, cols[0] : cols[-1] + 1]  # (h, w) uint8
    scale = DIGIT_BOX / max(crop.shape)
    height = max(1, round(crop.shape[0] * scale))
    width = max(1, round(crop.shape[1] * scale))
    digit = _resized_levels(crop, height, width, invert)  # (h', w'), max(h', w') == 20
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


def _resized_levels(grey: np.ndarray, height: int, width: int, invert: bool) -> np.ndarray:
    """(H, W) uint8 -> (height, width) float32 in [0, 1]: the model's levels of the picture,
    resized by Lanczos. A small picture by Pillow, on float32 (mode F); a bigger one by
    Pillow's weights as two matrix products (`_lanczos_products`), on the grey levels: the
    weights sum to 1, so the model's levels are made of the small result instead."""
    if grey.size <= PILLOW_RESIZE_UP_TO:
        image = Image.fromarray(_levels(grey, invert))  # mode F
        resized = np.asarray(image.resize((width, height), Image.Resampling.LANCZOS))
    else:
        x = torch.from_numpy(grey.astype(np.float32))  # (H, W) in 0..255
        resized = _levels(_lanczos_products(x, height, width), invert)
    clipped: np.ndarray = np.clip(resized, 0.0, 1.0)  # (height, width)
    return clipped


def _lanczos_products(x: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(H, W) float32 -> (height, width): Pillow's Lanczos (its weights, `_lanczos`) as two
    matrix products. Pillow walks each output pixel's window, 6 input pixels a side per
    output pixel: from a 600-pixel crop to 20, 2 ms; the products take a tenth of that.
    torch's, not numpy's: numpy's BLAS would run them on a thread per core, each spinning
    against the event loop, and torch's threads are the ones the service sets."""
    rows = torch.from_numpy(_lanczos(x.shape[0], height))  # (height, H)
    cols = torch.from_numpy(_lanczos(x.shape[1], width))  # (width, W)
    resized = (rows @ x) @ cols.T if height <= width else rows @ (x @ cols.T)
    return resized.numpy()  # (height, width)


def _lanczos(size: int, out: int) -> np.ndarray:
    """(out, size) float32: Pillow's Lanczos weights for resampling `size` pixels to `out`
    (libImaging/Resample.c, precompute_coeffs): a window of 3 input pixels a side, widened by
    the reduction, each row normalised to sum 1."""
    scale = size / out
    stretch = max(scale, 1.0)
    support = 3.0 * stretch
    centre = (np.arange(out) + 0.5) * scale  # (out,)
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)  # C's (int) truncation
    last = np.minimum((centre + support + 0.5).astype(np.int64), size)
    taps = first[:, None] + np.arange(int(np.ceil(support)) * 2 + 1)  # (out, k) input pixels
    t = (taps - centre[:, None] + 0.5) / stretch  # (out, k)
    angle = np.pi * t
    with np.errstate(divide="ignore", invalid="ignore"):  # sinc(t) sinc(t / 3), 1 at t = 0
        weights = np.where(t == 0, 1.0, 3.0 * np.sin(angle) * np.sin(angle / 3) / angle**2)
    weights[(taps >= last[:, None]) | (np.abs(t) >= 3.0)] = 0.0
    weights /= np.where((total := weights.sum(axis=1, keepdims=True)) == 0.0, 1.0, total)
    dense = np.zeros((out, size + taps.shape[1]), np.float32)  # room for taps past the edge
    dense[np.arange(out)[:, None], taps] = weights  # each row's window, in one call
    return dense[:, :size]


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
