"""PNG at the byte level: header checks for every file, and a fast path for 8-bit grey.

Reading the header first lets the service refuse a huge image before a pixel is inflated.
Most digits arrive (and all leave) as small 8-bit greyscale PNGs. A 28x28 one is checked here and
rewritten (`canonical_grey8`) for the model's batch to decode; other sizes are decoded here with
zlib and numpy (and, for Average and Paeth rows, Pillow's pixel decoder alone), where a general
decoder costs ten times that on the event loop. Anything else goes to Pillow's full decoder,
made grey with its transparency flattened (`decode_pixels`).
"""

from __future__ import annotations

import io
import re
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image
from zlib_ng import zlib_ng

from service.errors import ImageTooLarge, InvalidImage

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR = struct.Struct(">IIBBBBB")
_CHUNK_HEAD = struct.Struct(">I4s")
# The bit depths each colour type allows (PNG spec, table 11.1).
_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-f]+>")
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


@dataclass(frozen=True, slots=True)
class PngHeader:
    width: int
    height: int
    bit_depth: int
    color_type: int  # 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA
    interlaced: bool

    @property
    def is_plain_grey8(self) -> bool:
        return self.color_type == 0 and self.bit_depth == 8 and not self.interlaced


def read_header(data: bytes, max_side: int) -> PngHeader:
    """Check the signature and IHDR; refuse an image too large before any pixel is read."""
    if len(data) < 33 or not data.startswith(SIGNATURE):
        raise InvalidImage(f"not a PNG file (first bytes {data[:8]!r})")
    length, tag = _CHUNK_HEAD.unpack_from(data, 8)
    if tag != b"IHDR" or length != 13:
        raise InvalidImage("PNG does not start with an IHDR chunk")
    if zlib.crc32(data[12:29]) != struct.unpack_from(">I", data, 29)[0]:
        raise InvalidImage("PNG header chunk has a bad CRC")
    width, height, depth, color, compression, filtering, interlace = _IHDR.unpack_from(data, 16)
    if width == 0 or height == 0:
        raise InvalidImage(f"PNG claims a {width}x{height} image")
    if width > max_side or height > max_side:
        raise ImageTooLarge(
            f"image is {width}x{height} pixels; at most {max_side} pixels a side are accepted"
        )
    if depth not in _DEPTHS.get(color, ()):
        raise InvalidImage(f"PNG colour type {color} with bit depth {depth} does not exist")
    if compression != 0 or filtering != 0 or interlace > 1:
        raise InvalidImage(
            f"PNG header names unknown methods (compression {compression}, "
            f"filter {filtering}, interlace {interlace})"
        )
    return PngHeader(width, height, depth, color, interlace == 1)


def decode_grey8(data: bytes, header: PngHeader) -> np.ndarray:
    """Pixels of a plain 8-bit grey PNG as (H, W) uint8."""
    idat, raw = _checked_rows(data, header)
    rows = np.frombuffer(raw, np.uint8).reshape(header.height, header.width + 1)  # (H, 1 + W)
    filters = rows[:, 0]
    if not filters.any():  # what this service writes
        return rows[:, 1:]
    if filters.max() > 2:  # Average and Paeth run pixel by pixel: C does that, not numpy
        return _unfilter_in_pillow(idat, header)
    return _unfilter_sub_up(rows[:, 1:], filters)


def canonical_grey8(data: bytes, header: PngHeader) -> bytes:
    """A plain 8-bit grey PNG, checked as `decode_grey8` checks it, rewritten as the minimal PNG
    of the same pixels: IHDR, one IDAT of the rows still filtered but stored (not deflated),
    IEND. The model's batch unfilters these in C, off the event loop (`runtime/serving.py`); that
    decoder (libpng, through torchvision) crashes the process on some malformed streams, so it
    is only ever given a file built here from rows whose length and filter bytes were checked."""
    _, raw = _checked_rows(data, header)
    ihdr = _IHDR.pack(header.width, header.height, 8, 0, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 0)) + _IEND


def _checked_rows(data: bytes, header: PngHeader) -> tuple[bytes, bytes]:
    """The IDAT stream and its rows inflated, (H * (1 + W)) bytes, each with a filter byte 0-4.
    Every chunk's CRC is checked and the stream must inflate, completely, to exactly that."""
    idat = _collect_idat(data)
    row = header.width + 1  # one filter byte per row
    expected = row * header.height
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(idat, expected + 1)
    except zlib.error as exc:
        raise InvalidImage(f"PNG pixel data is corrupt ({exc})") from None
    if len(raw) != expected:
        raise InvalidImage(f"PNG pixel data has {len(raw)} bytes, the header implies {expected}")
    if not inflater.eof:
        raise InvalidImage("PNG pixel data ends before its compressed stream does (truncated)")
    highest = max(raw[::row])  # the filter bytes
    if highest > 4:
        raise InvalidImage(f"PNG row filter {highest} does not exist (filters are 0-4)")
    return idat, raw


def decode_pixels(data: bytes, header: PngHeader) -> np.ndarray:
    """Any PNG whose header was read -> (H, W) float32 grey in [0, 1], transparency flattened:
    plain 8-bit grey here with zlib and numpy, every other kind by Pillow."""
    if header.is_plain_grey8:
        return decode_grey8(data, header).astype(np.float32) * np.float32(1 / 255)  # (H, W)
    return _decode_with_pillow(data)


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


def _unfilter_in_pillow(idat: bytes, header: PngHeader) -> np.ndarray:
    """Pillow's PNG pixel decoder alone (most encoders filter adaptively, Paeth included):
    a quarter of the cost of `Image.open`, whose chunk parsing is Python. The stream has
    already inflated to the right length above."""
    size = (header.width, header.height)
    try:
        image = Image.frombytes("L", size, idat, "zip", "L", 0)
    except (ValueError, OSError) as exc:  # the rows were checked: this is a second line
        raise InvalidImage(f"PNG pixel data is corrupt ({exc})") from None
    return np.frombuffer(image.tobytes(), np.uint8).reshape(header.height, header.width)


def _unfilter_sub_up(pixels: np.ndarray, filters: np.ndarray) -> np.ndarray:
    out = pixels.copy()  # (H, W) uint8
    for y in np.flatnonzero(filters):
        if filters[y] == 1:  # Sub: running sum along the row, modulo 256
            out[y] = np.cumsum(out[y], dtype=np.uint8)
        elif y > 0:  # Up: add the row above
            out[y] += out[y - 1]
    return out


def _collect_idat(data: bytes) -> bytes:
    parts: list[bytes] = []
    pos, end = 8, len(data)
    while pos + 12 <= end:
        length, tag = _CHUNK_HEAD.unpack_from(data, pos)
        stop = pos + 8 + length
        if stop + 4 > end:
            raise InvalidImage(f"PNG chunk {tag!r} is truncated")
        if zlib.crc32(data[pos + 4 : stop]) != struct.unpack_from(">I", data, stop)[0]:
            raise InvalidImage(f"PNG chunk {tag!r} has a bad CRC")
        if tag == b"IDAT":
            parts.append(data[pos + 8 : stop])
        elif tag == b"IEND":
            return b"".join(parts)
        pos = stop + 4
    raise InvalidImage("PNG ends before its IEND chunk (truncated file)")


def _chunk(tag: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + tag
        + payload
        + struct.pack(">I", zlib.crc32(tag + payload))
    )


_IEND = _chunk(b"IEND", b"")


def encode_grey8(pixels: np.ndarray) -> bytes:
    """(H, W) uint8 -> PNG bytes, filter None: deterministic and small."""
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), np.uint8)  # (H, 1 + W), filter byte 0
    rows[:, 1:] = pixels
    # zlib-ng's fastest level: 4 us for a 28x28 answer against 9 us for zlib's run-length
    # deflate, for about 40 bytes more (372 against 334 on average), on the event loop.
    idat = zlib_ng.compress(rows.tobytes(), 1)
    ihdr = _chunk(b"IHDR", _IHDR.pack(width, height, 8, 0, 0, 0, 0))
    return SIGNATURE + ihdr + _chunk(b"IDAT", idat) + _IEND
