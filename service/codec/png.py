"""The PNG format: header checks, chunks, rows, and pixels out as grey; and the PNG we write.

Reading the header first (`read_header`) lets the service refuse a huge image before a pixel is
inflated. Pixels come out as (H, W) uint8 grey (`decode_grey`), the way Pillow greys colour
(ITU-R 601-2 luma), transparency flattened onto whichever of black or white contrasts with what
is drawn. 8-bit grey, grey+alpha, RGB and RGBA files that are not interlaced, all a phone canvas
or a browser writes (colour ones from 200x200 up: below, Pillow is as quick), are decoded here:
inflated by zlib-ng, each row that only repeats the one above (a canvas's background) kept
once, the rest unfiltered by numpy, with Pillow's pixel decoder for runs of Average and Paeth
rows; a general decoder costs three times that. Their other chunks still go through Pillow's
readers, so a file Pillow refuses is refused. Anything else goes to Pillow's full decoder.
A 28x28 8-bit grey file is checked and rewritten
(`canonical_grey8`) for the model's batch to decode itself. What those pixels mean to the model
(polarity, fitting, 28x28) is `digits`' business, not this module's.
"""

from __future__ import annotations

import io
import math
import re
import struct
import zlib
from dataclasses import dataclass
from typing import cast

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


# The colour types decoded here from their rows (8-bit, not interlaced), by channel count, and
# the Pillow mode that holds such a row as it is.
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_UP, _AVERAGE = 2, 3
# Below this many pixels Pillow decodes colour as quickly: its fixed costs are lower.
_OWN_DECODER_FROM = 200 * 200
_INFLATE_ERROR = cast(type[Exception], zlib_ng.error)  # its stubs type it as an instance


def decode_grey(data: bytes, header: PngHeader) -> np.ndarray:
    """Any PNG whose header was read -> (H, W) uint8 grey, transparency flattened."""
    own = header.is_plain_grey8 or header.width * header.height >= _OWN_DECODER_FROM
    if own and header.bit_depth == 8 and not header.interlaced and header.color_type in _CHANNELS:
        chunks = _read_chunks(data)
        if not chunks.animated:  # an APNG's frame chunks are Pillow's to check
            return _decode_8bit(chunks, header, _CHANNELS[header.color_type])
    return _decode_with_pillow(data)


def canonical_grey8(data: bytes, header: PngHeader) -> bytes:
    """A plain 8-bit grey PNG, checked as `decode_grey` checks it, rewritten as the minimal PNG
    of the same pixels: IHDR, one IDAT of the rows still filtered but stored (not deflated),
    IEND. The model's batch unfilters these in C, off the event loop (`runtime/serving.py`); that
    decoder (libpng, through torchvision) crashes the process on some malformed streams, so it
    is only ever given a file built here from rows whose length and filter bytes were checked."""
    raw = _checked_rows(_read_chunks(data), header, 1)
    ihdr = _IHDR.pack(header.width, header.height, 8, 0, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 0)) + _IEND


def _checked_rows(chunks: _Chunks, header: PngHeader, channels: int) -> bytes:
    """The IDAT stream inflated: (H * (1 + W * channels)) bytes, rows of 8-bit samples each
    after a filter byte 0-4. Every chunk's CRC is checked. A plain grey stream must inflate,
    completely, to exactly that (the model's batch decodes those: `canonical_grey8`); of any
    other, as of Pillow's decoder, no more is read than the header implies."""
    row = header.width * channels + 1  # one filter byte per row
    expected = row * header.height
    exact = header.is_plain_grey8
    inflater = zlib_ng.decompressobj()
    try:
        raw: bytes = inflater.decompress(chunks.idat, expected + exact)
    except _INFLATE_ERROR as exc:
        raise InvalidImage(f"PNG pixel data is corrupt ({exc})") from None
    if len(raw) != expected:
        raise InvalidImage(f"PNG pixel data has {len(raw)} bytes, the header implies {expected}")
    if exact and not inflater.eof:
        raise InvalidImage("PNG pixel data ends before its compressed stream does (truncated)")
    highest = max(raw[::row])  # the filter bytes
    if highest > 4:
        raise InvalidImage(f"PNG row filter {highest} does not exist (filters are 0-4)")
    return raw


def _decode_8bit(chunks: _Chunks, header: PngHeader, channels: int) -> np.ndarray:
    raw = _checked_rows(chunks, header, channels)
    if not header.is_plain_grey8:
        _check_other_chunks(chunks, header, channels)
    rows = np.frombuffer(raw, np.uint8).reshape(header.height, -1)  # (H, 1 + W * C)
    distinct, index = _unfilter(rows, channels)  # (K, W * C): the rows that differ, (H,)
    if channels == 1:
        grey, alpha = distinct, None
    else:
        # Pillow holds RGB as RGBX: let it unpack the rows and grey them, in C.
        mode, size = _MODES[channels], (header.width, len(distinct))
        image = Image.frombuffer(mode, size, np.ascontiguousarray(distinct), "raw", mode, 0, 1)
        grey = np.asarray(image.convert("L"))  # (K, W)
        alpha = np.asarray(image.getchannel("A")) if channels % 2 == 0 else None  # (K, W)
    if index is not None:
        grey = grey[index]  # (H, W)
        alpha = None if alpha is None else alpha[index]
    return grey if alpha is None else _flatten(grey, alpha)


def _unfilter(rows: np.ndarray, bpp: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, 1 + S) filtered rows of `bpp` bytes a pixel -> (K, S) pixel rows, and which of
    them each of the H rows is (None when K == H). A row filtered Up with nothing to add
    repeats the one above; it is kept once (a blank canvas is mostly such rows)."""
    filters, pixels = rows[:, 0], rows[:, 1:]
    if not filters.any():  # what this service writes
        return pixels, None
    repeats = (filters == _UP) & (pixels.max(axis=1) == 0)  # (H,): max is SIMD, any is not
    repeats[0] = False
    if not repeats.any():
        out = pixels.copy()
        _unfilter_rows(out, filters, bpp)
        return out, None
    kept = ~repeats
    out = pixels[kept]  # (K, S)
    _unfilter_rows(out, filters[kept], bpp)
    return out, np.cumsum(kept) - 1  # (H,) each row's kept row


def _unfilter_rows(out: np.ndarray, filters: np.ndarray, bpp: int) -> None:
    """Undo each row's filter in place, top to bottom; each row's predecessor is the row above
    it in `out`. A run of rows of one filter is undone at once, so a canvas costs a few dozen
    calls, not one a row (each call lets go of the GIL and must take it back from a busy event
    loop): a run of Up rows is a running sum down the columns, a run of Sub rows one along each
    row, both modulo 256; Average and Paeth go byte by byte, by Pillow's decoder in C."""
    kinds = np.minimum(filters, _AVERAGE)  # (K,): Average and Paeth rows make one run
    starts = np.flatnonzero(np.diff(kinds, prepend=-1)).tolist()  # where each run begins
    for start, stop in zip(starts, [*starts[1:], len(kinds)], strict=True):
        kind = int(kinds[start])
        if kind == 1:  # Sub: within each row, per channel
            run = out[start:stop].reshape(stop - start, -1, bpp)  # (n, W, bpp)
            np.cumsum(run, axis=1, dtype=np.uint8, out=run)
        elif kind == _UP:  # down the columns, from the row above the run
            _running_sum_down(out[max(start - 1, 0) : stop])
        elif kind >= _AVERAGE:  # runs of Average and Paeth alike: one call to Pillow
            out[start:stop] = _unfilter_in_pillow(out, filters, start, stop, bpp)


def _running_sum_down(run: np.ndarray) -> None:
    """(n, S) uint8, in place: each row plus every row above it, modulo 256. numpy's cumsum
    down a column is scalar and 3x slower than adding row to row; adding a block of k rows to
    the k below it at once takes about 2 sqrt(n) calls, not n, for twice the additions."""
    n = len(run)
    k = max(1, math.isqrt(n))
    full = n - n % k
    blocks = run[:full].reshape(full // k, k, -1)  # (n / k, k, S)
    for j in range(1, k):  # within every block at once
        blocks[:, j] += blocks[:, j - 1]
    for b in range(1, len(blocks)):  # each block from the last row of the one above, now final
        blocks[b] += blocks[b - 1, -1]
    for y in range(full, n):  # the rows after the last whole block
        run[y] += run[y - 1]


def _unfilter_in_pillow(
    out: np.ndarray, filters: np.ndarray, start: int, stop: int, bpp: int
) -> np.ndarray:
    """Rows start..stop of `out` unfiltered by Pillow's PNG pixel decoder alone (a quarter of
    the cost of `Image.open`, whose chunk parsing is Python), the row above given first, as
    stored: (stop - start, S)."""
    width = out.shape[1] // bpp
    block = np.zeros((stop - start + 1, out.shape[1] + 1), np.uint8)  # (n + 1, 1 + S)
    if start > 0:
        block[0, 1:] = out[start - 1]
    block[1:, 0] = filters[start:stop]
    block[1:, 1:] = out[start:stop]
    mode = _MODES[bpp]
    try:  # the rows were checked: this is a second line
        image = Image.frombytes(mode, (width, len(block)), zlib_ng.compress(block, 0), "zip", mode)
    except (ValueError, OSError) as exc:
        raise InvalidImage(f"PNG pixel data is corrupt ({exc})") from None
    return np.frombuffer(image.tobytes(), np.uint8).reshape(len(block), -1)[1:]


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
    """Any PNG mode -> (H, W) uint8, transparency flattened."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):
        wide = np.clip(np.asarray(image, dtype=np.float32) * np.float32(255 / 65535), 0, 255)
        narrow: np.ndarray = np.rint(wide).astype(np.uint8)  # (H, W)
        return narrow
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "L")
    alpha = None
    if image.mode in ("RGBA", "LA"):
        alpha = np.asarray(image.getchannel("A"))
    grey = np.asarray(image.convert("L"))  # (H, W)
    return grey if alpha is None else _flatten(grey, alpha)


def _flatten(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite onto the background that contrasts with what is drawn, so ink never vanishes:
    (H, W) uint8 grey and alpha -> (H, W) uint8."""
    if alpha.min() == 255:
        return grey
    opaque = alpha >= 128  # over one half
    if not opaque.any():
        return np.zeros_like(grey)
    background = 255.0 if grey[opaque].mean() < 127.5 else 0.0
    weight = alpha.astype(np.float32) * np.float32(1 / 255)  # (H, W)
    flat = grey * weight + np.float32(background) * (1 - weight)
    flattened: np.ndarray = np.rint(flat).astype(np.uint8)
    return flattened


@dataclass(frozen=True, slots=True)
class _Chunks:
    idat: bytes  # the IDAT chunks' data, end to end
    before: list[bytes]  # every other chunk before the first IDAT, whole, IHDR aside
    after: list[bytes]  # every other chunk after it, IEND aside

    @property
    def animated(self) -> bool:
        return any(chunk[4:8] == b"acTL" for chunk in self.before)


def _read_chunks(data: bytes) -> _Chunks:
    """The file's chunks, each one's CRC checked, up to IEND."""
    parts: list[bytes] = []
    before: list[bytes] = []
    after: list[bytes] = []
    pos, end = 8 + 25, len(data)  # past the signature and IHDR, which `read_header` checked
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
            return _Chunks(b"".join(parts), before, after)
        else:
            (after if parts else before).append(data[pos : stop + 4])
        pos = stop + 4
    raise InvalidImage("PNG ends before its IEND chunk (truncated file)")


def _check_other_chunks(chunks: _Chunks, header: PngHeader, channels: int) -> None:
    """Refuse what Pillow's decoder refuses for the chunks around the pixels (a 2-byte cHRM,
    a cut iCCP, a zTXt that inflates past Pillow's limit, ...): Pillow reads them, in their
    places, around one pixel of the same kind. A file with no other chunks costs nothing."""
    if not chunks.before and not chunks.after:
        return
    ihdr = _chunk(b"IHDR", _IHDR.pack(1, 1, 8, header.color_type, 0, 0, 0))
    pixel = _chunk(b"IDAT", zlib.compress(bytes(1 + channels)))  # filter byte, one pixel
    probe = b"".join([SIGNATURE, ihdr, *chunks.before, pixel, *chunks.after, _IEND])
    _decode_with_pillow(probe)


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
