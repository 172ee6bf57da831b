"""Drawings of every size, mode and polarity give the model the same digit as the reference
fit within one grey level; the PNG decoder gives Pillow's grey pixels exactly.

`reference_model_input` below is the codec as it was before big images got their own path
(Pillow's decoder, float32 over the whole picture, Pillow's Lanczos on the float crop), kept
here unchanged as the answer new code must give. The comparison is on the model's input, the
(28, 28) float32 in [0, 1], in grey levels (x * 255).
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from service.codec import digits, png

OPTIONS = digits.ImageOptions()


# The reference: the codec before this change, frozen.


def reference_model_input(data: bytes, invert: str = "auto", fit: str = "mnist") -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        grey = _reference_grey(image)  # (H, W) float32 in [0, 1]
    if _reference_should_invert(grey, invert):
        grey = 1.0 - grey
    if grey.shape != (28, 28):
        grey = _reference_fit(grey) if fit == "mnist" else _reference_resize(grey, 28, 28)
    return grey


def _reference_grey(image: Image.Image) -> np.ndarray:
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        wide: np.ndarray = np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0.0, 1.0)
        return wide
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "L")
    alpha = None
    if image.mode in ("RGBA", "LA"):
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    if alpha is None:
        return grey
    opaque = alpha > 0.5
    if not opaque.any():
        return np.zeros_like(grey)
    background = 1.0 if grey[opaque].mean() < 0.5 else 0.0
    flat: np.ndarray = grey * alpha + background * (1.0 - alpha)
    return flat


def _reference_should_invert(grey: np.ndarray, invert: str) -> bool:
    if invert != "auto":
        return invert == "true"
    height, width = grey.shape
    light = int(np.count_nonzero(grey > 0.5)) - int(np.count_nonzero(grey[1:-1, 1:-1] > 0.5))
    frame = grey.size - max(height - 2, 0) * max(width - 2, 0)
    return bool(2 * light > frame)


def _reference_fit(grey: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero((grey > 0.1).any(axis=1))
    cols = np.flatnonzero((grey > 0.1).any(axis=0))
    if rows.size == 0:
        return _reference_resize(grey, 28, 28)
    crop = grey[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = 20 / max(crop.shape)
    height = max(1, round(crop.shape[0] * scale))
    width = max(1, round(crop.shape[1] * scale))
    digit = _reference_resize(crop, height, width)
    out = np.zeros((28, 28), np.float32)
    top, left = _reference_mass_offset(digit)
    out[top : top + height, left : left + width] = digit
    return out


def _reference_mass_offset(digit: np.ndarray) -> tuple[int, int]:
    height, width = digit.shape
    total = float(digit.sum())
    if total <= 0:
        return (28 - height) // 2, (28 - width) // 2
    cy = float((digit.sum(axis=1) * np.arange(height)).sum()) / total
    cx = float((digit.sum(axis=0) * np.arange(width)).sum()) / total
    top = min(max(round(13.5 - cy), 0), 28 - height)
    left = min(max(round(13.5 - cx), 0), 28 - width)
    return top, left


def _reference_resize(grey: np.ndarray, height: int, width: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32))
    resized = image.resize((width, height), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


# The drawings.


def drawing(width: int, height: int, stroke: float, seed: int) -> Image.Image:
    """A digit-like stroke, white on black, (height, width), anti-aliased by drawing at 4x."""
    rng = np.random.default_rng(seed)
    big = Image.new("L", (width * 4, height * 4), 0)
    points = [
        (float(x), float(y)) for x, y in rng.uniform(0.15, 0.85, (5, 2)) * (width * 4, height * 4)
    ]
    ImageDraw.Draw(big).line(points, fill=255, width=max(1, round(stroke * 4)), joint="curve")
    return big.resize((width, height), Image.Resampling.BOX)


def as_png(ink: Image.Image, mode: str, dark_on_light: bool) -> bytes:
    """The drawing (an "L" image, ink 255) in a PNG of `mode`, in the polarity asked."""
    grey = np.asarray(ink)
    paper, pen = (255, 20) if dark_on_light else (0, 235)
    level = (paper + (pen - paper) * (grey / 255.0)).round().astype(np.uint8)  # (H, W)
    save: dict[str, Any] = {}
    if mode == "RGB":
        image = Image.fromarray(np.stack([level, level, np.minimum(level + 10, 255)], axis=-1))
    elif mode == "RGBA-transparent":  # ink only, on nothing: alpha carries the drawing
        rgba = np.zeros((*grey.shape, 4), np.uint8)
        rgba[..., :3] = pen
        rgba[..., 3] = grey
        image = Image.fromarray(rgba)
    elif mode == "RGBA":
        image = Image.fromarray(np.stack([level] * 3 + [np.full_like(level, 255)], axis=-1))
    elif mode == "I;16":
        image = Image.fromarray(level.astype(np.uint16) * 257 + 100)
    elif mode == "P":
        image = Image.fromarray(level).convert("P")
    else:  # "L", "LA", "1"
        image = Image.fromarray(level).convert(mode)
    out = io.BytesIO()
    image.save(out, "PNG", **save)
    return out.getvalue()


CASES = [
    # (width, height, stroke width in pixels, mode, dark on light)
    (28, 28, 2.5, "L", False),
    (28, 28, 2.5, "RGB", True),
    (64, 48, 1.0, "L", True),
    (140, 140, 10.0, "RGB", True),
    (140, 140, 1.0, "RGBA-transparent", True),
    (200, 300, 20.0, "P", False),
    (280, 280, 25.0, "RGBA", True),
    (280, 280, 2.0, "LA", False),
    (300, 120, 12.0, "I;16", True),
    (560, 560, 45.0, "RGB", True),
    (560, 560, 3.0, "RGB", False),
    (600, 400, 30.0, "1", True),
    (1080, 1080, 90.0, "RGB", True),
    (1080, 1080, 4.0, "RGB", True),
    (1080, 1080, 90.0, "RGBA-transparent", True),
    (1080, 1080, 70.0, "L", False),
    (2048, 2048, 160.0, "RGB", True),
]


@pytest.mark.parametrize(("width", "height", "stroke", "mode", "dark"), CASES)
def test_drawings_fit_like_the_reference(
    width: int, height: int, stroke: float, mode: str, dark: bool
) -> None:
    data = as_png(drawing(width, height, stroke, seed=width + height), mode, dark)
    want = reference_model_input(data)
    got = digits.decode_image(data, OPTIONS, 2048)
    assert got.shape == (28, 28) and got.dtype == np.float32
    assert np.abs(got * 255 - want * 255).max() <= 1.0


@pytest.mark.parametrize(
    ("invert", "fit"), [("true", "mnist"), ("false", "mnist"), ("auto", "stretch")]
)
def test_options_fit_like_the_reference(invert: str, fit: str) -> None:
    data = as_png(drawing(300, 200, 14.0, seed=7), "RGB", dark_on_light=True)
    options = digits.ImageOptions(invert, fit)  # type: ignore[arg-type]
    got = digits.decode_image(data, options, 2048)
    assert np.abs(got * 255 - reference_model_input(data, invert, fit) * 255).max() <= 1.0


@pytest.mark.parametrize("side", [28, 300])
def test_blank_pictures_fit_like_the_reference(side: int) -> None:
    for level in (0, 255, 128):
        data = as_png(Image.new("L", (side, side), 0), "RGB", dark_on_light=level > 0)
        got = digits.decode_image(data, OPTIONS, 2048)
        assert np.abs(got * 255 - reference_model_input(data) * 255).max() <= 1.0


# The decoder, row filter by row filter, against Pillow's grey.


def filtered_png(pixels: np.ndarray, color: int, filters: list[int]) -> bytes:
    """An 8-bit PNG of `pixels` (H, W, C) whose rows use `filters` in turn (0 None ... 4 Paeth)."""
    height, width, channels = pixels.shape
    rows, up = [], np.zeros(width * channels, np.int16)
    for y in range(height):
        row = pixels[y].reshape(-1).astype(np.int16)
        left = np.concatenate([np.zeros(channels, np.int16), row[:-channels]])
        corner = np.concatenate([np.zeros(channels, np.int16), up[:-channels]])
        kind = filters[y % len(filters)]
        guess = left + up - corner
        paeth = np.where(
            (abs(guess - left) <= abs(guess - up)) & (abs(guess - left) <= abs(guess - corner)),
            left, np.where(abs(guess - up) <= abs(guess - corner), up, corner),
        )  # fmt: skip
        predictor = [0, left, up, (left + up) // 2, paeth][kind]
        rows.append(bytes([kind]) + ((row - predictor) % 256).astype(np.uint8).tobytes())
        up = row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (
        png.SIGNATURE + png._chunk(b"IHDR", ihdr)
        + png._chunk(b"IDAT", zlib.compress(b"".join(rows))) + png._chunk(b"IEND", b"")
    )  # fmt: skip


COLOR_TYPES = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> channels


@pytest.mark.parametrize("color", sorted(COLOR_TYPES))
@pytest.mark.parametrize(
    "filters", [[0], [1], [2], [3], [4], [2, 2, 2, 4, 4, 1, 0, 3, 2, 2], [4, 0, 3, 1, 2]]
)
def test_decoder_gives_pillows_grey(color: int, filters: list[int]) -> None:
    rng = np.random.default_rng(color * 10 + len(filters))
    pixels = rng.integers(0, 256, (210, 200, COLOR_TYPES[color]), dtype=np.uint8)
    pixels[5:90] = pixels[4]  # repeated rows, as a canvas's background has
    if COLOR_TYPES[color] in (2, 4):
        pixels[..., -1] = 255  # opaque: the grey is the colour's alone
    data = filtered_png(pixels, color, filters)
    with Image.open(io.BytesIO(data)) as image:
        want = np.asarray(image.convert("L"))
    np.testing.assert_array_equal(png.decode_grey(data, png.read_header(data, 2048)), want)


@pytest.mark.parametrize("rows", [1, 2, 3, 8, 9, 10, 17, 1080])
def test_a_run_of_up_rows_sums_down_the_columns_modulo_256(rows: int) -> None:
    pixels = np.random.default_rng(rows).integers(0, 256, (rows, 12), dtype=np.uint8)
    want = np.cumsum(pixels, axis=0, dtype=np.uint8)  # (rows, 12), wrapping as PNG's Up does
    png._running_sum_down(pixels)
    np.testing.assert_array_equal(pixels, want)
