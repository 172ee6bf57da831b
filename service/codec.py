"""Bytes to model input and model output to bytes: PNG, base64, GIF and strips.

Any PNG a client has (1-bit to 16-bit, grey, palette, RGB, with or without alpha, any size up to
the limit) becomes what the model was trained on: 28x28 float32 in [0, 1], light ink on a dark
background, the digit fitted and centred the way MNIST was made.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from service.errors import InvalidBase64, InvalidImage
from service.png import PngHeader, canonical_grey8, decode_grey8, encode_grey8, read_header

SIDE = 28
DIGIT_BOX = 20  # MNIST fitted each digit in 20x20, then centred it by mass in 28x28
INK_THRESHOLD = 0.1
INLINE_PIXELS = 64 * 64  # decode bigger images off the event loop
_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-f]+>")

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
    if header.is_plain_grey8:
        grey = decode_grey8(data, header).astype(np.float32) * np.float32(1 / 255)  # (H, W)
    else:
        grey = _decode_with_pillow(data)
    if _should_invert(grey, options.invert):
        grey = 1.0 - grey
    if grey.shape != (SIDE, SIDE):
        grey = fit_mnist(grey) if options.fit == "mnist" else _resize(grey, SIDE, SIDE)
    return grey


def _decode_with_pillow(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
            return _to_grey(image)
    except Exception as exc:
        # Pillow's chunk readers meet hostile bytes with whatever breaks first (struct.error
        # from a short cHRM, IndexError from a 2-byte iCCP, ...): all mean an unreadable file.
        raise InvalidImage(f"PNG could not be decoded ({_short(exc)})") from None


def _short(exc: Exception) -> str:
    text = _OBJECT_REPR.sub("", str(exc)).strip()  # no "<_io.BytesIO object at 0x...>"
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _to_grey(image: Image.Image) -> np.ndarray:
    """Any PNG mode -> (H, W) float32 in [0, 1], transparency flattened."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        wide: np.ndarray = np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0.0, 1.0)
        return wide
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "L")
    alpha = None
    if image.mode in ("RGBA", "LA"):
        alpha = np.asarray(image.getchannel("A"), dtype=np.float32) / 255.0
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0  # (H, W)
    return grey if alpha is None else _flatten(grey, alpha)


def _flatten(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite onto the background that contrasts with what is drawn, so ink never vanishes."""
    opaque = alpha > 0.5
    if not opaque.any():
        return np.zeros_like(grey)
    background = 1.0 if grey[opaque].mean() < 0.5 else 0.0
    flat: np.ndarray = grey * alpha + background * (1.0 - alpha)
    return flat


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


def png_bytes(image: np.ndarray) -> bytes:
    """(28, 28) uint8 -> PNG."""
    return encode_grey8(image)


def strip_png(frames: np.ndarray) -> bytes:
    """(n, 28, 28) uint8 -> one (28, 28 n) PNG, frames left to right."""
    return encode_grey8(np.concatenate(list(frames), axis=1))


def gif_bytes(frames: np.ndarray, frame_ms: int = 100) -> bytes:
    """(n, 28, 28) uint8 -> an animated GIF that loops forever."""
    images = [Image.fromarray(frame) for frame in frames]  # mode L
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return out.getvalue()


def b64decode(text: str, field: str) -> bytes:
    """Standard base64, with or without a `data:image/png;base64,` prefix and line breaks."""
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return binascii.a2b_base64("".join(text.split()), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBase64(f"{field} is not valid base64 ({exc})") from None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
