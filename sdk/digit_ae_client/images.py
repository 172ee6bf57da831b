"""Whatever the caller holds as an image -> PNG bytes for the service, and PNG -> PIL back.

An image is a path (str or Path) to an image file, the file's bytes, a PIL image, or a numpy
array: H×W grey, or H×W×C with C in 1, 3, 4; uint8 in 0..255 or float in [0, 1]. The service
reads PNG only, so other formats PIL can open (JPEG, BMP...) are converted here.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

import numpy as np
from PIL import Image, UnidentifiedImageError

from digit_ae_client.errors import InvalidInput

ImageLike: TypeAlias = str | os.PathLike[str] | bytes | Image.Image | np.ndarray
Images: TypeAlias = ImageLike | Sequence[ImageLike]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}


def as_list(images: Images) -> list[ImageLike]:
    """One image or many -> a list; a numpy array of ndim 3 (N, H, W) or 4 is a batch."""
    if isinstance(images, np.ndarray):
        if images.ndim == 2:
            return [images]
        if images.ndim in (3, 4):
            return list(images)
        raise InvalidInput(f"an image array has 2 dimensions (H, W); got shape {images.shape}")
    if isinstance(images, str | bytes | os.PathLike | Image.Image):
        return [images]
    try:
        items = list(images)
    except TypeError:  # not a collection: let png_bytes say what it is
        return [images]  # type: ignore[list-item]
    if not items:
        raise InvalidInput("no images given")
    return items


def png_bytes(image: ImageLike, where: str = "image") -> bytes:
    """One image -> PNG file bytes; `where` names it in error messages."""
    if isinstance(image, str | os.PathLike):
        where = os.fspath(image)
        image = Path(image).read_bytes()
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
        return data if data.startswith(PNG_SIGNATURE) else _reencode(data, where)
    if isinstance(image, Image.Image):
        return _save_png(image, where)
    if isinstance(image, np.ndarray):
        return _save_png(_from_array(image, where), where)
    raise InvalidInput(
        f"{where}: a {type(image).__name__} is not an image; give a path, PNG bytes, "
        "a PIL image or a numpy array"
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def from_b64(text: str) -> Image.Image:
    return open_png(base64.b64decode(text))


def open_png(data: bytes) -> Image.Image:
    """PNG bytes -> a loaded PIL image (no file handle left open)."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _reencode(data: bytes, where: str) -> bytes:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInput(f"{where}: not an image file PIL can read ({exc})") from None
    return _save_png(image, where)


def _save_png(image: Image.Image, where: str) -> bytes:
    if image.mode == "F":  # float pixels: the same rules as a float array
        image = _from_array(np.asarray(image), where)
    elif image.mode not in PNG_MODES:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _from_array(array: np.ndarray, where: str) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]  # (H, W, 1) -> (H, W)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise InvalidInput(f"{where}: an image array is (H, W) or (H, W, C); got {array.shape}")
    return Image.fromarray(_to_uint8(array, where))


def _to_uint8(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise InvalidInput(f"{where}: a float image has values in [0, 1]")
        return (array * 255 + 0.5).astype(np.uint8)  # rounded: the values are not negative
    if array.dtype.kind in "iu":
        if array.min() < 0 or array.max() > 255:
            raise InvalidInput(f"{where}: an integer image has values in 0..255")
        return array.astype(np.uint8)
    raise InvalidInput(f"{where}: an image array of dtype {array.dtype} is not supported")


def save_gif(frames: Sequence[Image.Image], path: str | os.PathLike[str], frame_ms: int) -> None:
    """An animated GIF that loops forever, one frame every `frame_ms`."""
    first, *rest = frames
    first.save(path, "GIF", save_all=True, append_images=rest, duration=frame_ms, loop=0)


def save_strip(frames: Sequence[Image.Image], path: str | os.PathLike[str]) -> None:
    """The frames side by side, left to right, in one PNG."""
    width = sum(frame.width for frame in frames)
    strip = Image.new("L", (width, max(frame.height for frame in frames)))
    x = 0
    for frame in frames:
        strip.paste(frame.convert("L"), (x, 0))
        x += frame.width
    strip.save(path, "PNG")
