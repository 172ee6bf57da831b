"""Real files for the hostile corpus, made in code: PNGs of every kind (odd, broken and
dangerous ones included), and the JPEG, GIF, PDF and SVG that get sent where a PNG belongs.

Everything is built from Pillow, zlib and struct; nothing is mocked and nothing is downloaded.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
GiB = 1024**3


def digit(side: int = 28) -> np.ndarray:
    """(side, side) uint8: a light "1" on black, the way MNIST draws it."""
    pixels = np.zeros((side, side), np.uint8)
    pixels[side // 5 : side - side // 5, side * 3 // 7 : side * 4 // 7] = 255
    return pixels


def saved(image: Image.Image, kind: str = "PNG", **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def png(mode: str = "L", **options: Any) -> bytes:
    """The digit as a PNG in any Pillow mode ("1", "L", "P", "LA", "RGB", "RGBA", "I;16")."""
    if mode == "I;16":
        return saved(Image.fromarray(digit().astype(np.uint16) * 257), **options)  # 16-bit grey
    return saved(Image.fromarray(digit()).convert(mode), **options)


def chunk(tag: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(tag + payload)
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", crc)


def ihdr(width: int, height: int, depth: int = 8, color: int = 0, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace))


def assemble(header: bytes, *chunks: bytes) -> bytes:
    return SIGNATURE + header + b"".join(chunks) + chunk(b"IEND", b"")


def grey_png(pixels: np.ndarray, interlace: bool = False) -> bytes:
    """(H, W) uint8 -> 8-bit grey PNG, filter None, written here (Pillow cannot interlace)."""
    height, width = pixels.shape
    raw = _adam7_rows(pixels) if interlace else _rows(pixels)
    header = ihdr(width, height, interlace=int(interlace))
    return assemble(header, chunk(b"IDAT", zlib.compress(raw)))


def grey_rows(rows: bytes, stream: bytes | None = None) -> bytes:
    """A 28x28 8-bit grey PNG of these filtered rows (or of this zlib stream), however wrong.
    Such a file is the kind the model's batch decodes with libpng, which crashes on some."""
    return assemble(ihdr(28, 28), chunk(b"IDAT", zlib.compress(rows) if stream is None else stream))


def _rows(pixels: np.ndarray) -> bytes:
    rows = np.zeros((pixels.shape[0], pixels.shape[1] + 1), np.uint8)  # (H, 1 + W)
    rows[:, 1:] = pixels
    return rows.tobytes()


# Adam7: (first row, first column, row step, column step) of each of the seven passes.
_PASSES = (
    (0, 0, 8, 8),
    (0, 4, 8, 8),
    (4, 0, 8, 4),
    (0, 2, 4, 4),
    (2, 0, 4, 2),
    (0, 1, 2, 2),
    (1, 0, 2, 1),
)


def _adam7_rows(pixels: np.ndarray) -> bytes:
    parts = []
    for top, left, dy, dx in _PASSES:
        reduced = pixels[top::dy, left::dx]  # (h', w'), empty passes write nothing
        if reduced.size:
            parts.append(_rows(reduced))
    return b"".join(parts)


def apng() -> bytes:
    """Two frames: the digit, then its negative; a reader that ignores animation sees the first."""
    frames = [Image.fromarray(digit()), Image.fromarray(255 - digit())]
    return saved(frames[0], save_all=True, append_images=frames[1:], duration=100, loop=0)


def bad_crc(data: bytes, tag: bytes) -> bytes:
    """The file with the CRC of its first `tag` chunk flipped."""
    at = data.index(tag)
    length = struct.unpack(">I", data[at - 4 : at])[0]
    crc_at = at + 4 + length
    return data[:crc_at] + bytes(b ^ 0xFF for b in data[crc_at : crc_at + 4]) + data[crc_at + 4 :]


def with_chunk_after_idat(data: bytes, tag: bytes, payload: bytes) -> bytes:
    """A valid-CRC ancillary chunk inserted right before IEND, where readers meet it last."""
    end = data.rindex(b"IEND") - 4
    return data[:end] + chunk(tag, payload) + data[end:]


def zeros_deflate(total: int, block: int = 1 << 20) -> bytes:
    """A zlib stream that inflates to `total` zero bytes, built in milliseconds.

    One megabyte of zeros is deflated once and its full-flush segment repeated: each segment
    starts from a fresh dictionary, so the repeats are valid, and the Adler-32 of n zeros is
    simply (n mod 65521) << 16 | 1.
    """
    assert total % block == 0
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = deflater.compress(bytes(block)) + deflater.flush(zlib.Z_FULL_FLUSH)
    final = deflater.flush(zlib.Z_FINISH)
    adler = ((total % 65521) << 16) | 1
    return b"\x78\xda" + segment * (total // block) + final + struct.pack(">I", adler)


def pixel_bomb(color: int = 0, inflated: int = 4 * GiB, side: int = 2048) -> bytes:
    """A `side` x `side` header (within limits) whose IDAT inflates to `inflated` bytes."""
    return assemble(ihdr(side, side, 8, color), chunk(b"IDAT", zeros_deflate(inflated)))


def huge_header(side: int = 100_000) -> bytes:
    """A PNG that claims side x side pixels (40 GB of RGBA) with a tiny IDAT."""
    return assemble(ihdr(side, side, 8, 6), chunk(b"IDAT", zlib.compress(b"\0" * 64)))


def padded_png(size: int) -> bytes:
    """A valid PNG of exactly `size` bytes: the digit plus a tEXt chunk of padding."""
    base = png()
    pad = size - len(base) - 12 - len(b"Comment\0")
    return with_chunk_after_idat(base, b"tEXt", b"Comment\0" + b"x" * pad)


def jpeg() -> bytes:
    return saved(Image.fromarray(digit()), "JPEG", quality=90)


def gif() -> bytes:
    return saved(Image.fromarray(digit()), "GIF")


def pdf() -> bytes:
    return saved(Image.fromarray(digit()).convert("RGB"), "PDF")


SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28">'
    b'<rect x="12" y="5" width="4" height="18" fill="white"/></svg>'
)
