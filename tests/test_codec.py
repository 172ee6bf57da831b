"""PNG in and out, without HTTP: every mode, the fast path against Pillow, MNIST-style fitting."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from service.codec import digits as codec
from service.codec import frames as frames_codec
from service.codec import png, text
from service.errors import ImageTooLarge, InvalidImage, NotAcceptable
from service.fronts.native.negotiation import choose_format
from tests.hostile_files import grey_png

OPTIONS = codec.ImageOptions()


def digit(side: int = 28) -> np.ndarray:
    """A light stroke on black, (side, side) uint8."""
    image = np.zeros((side, side), np.uint8)
    image[side // 4 : 3 * side // 4, side // 2 - side // 14 : side // 2 + side // 14] = 255
    image[side // 4, side // 3 : 2 * side // 3] = 200
    return image


def pillow_png(image: Image.Image, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **save)
    return out.getvalue()


def filtered_png(pixels: np.ndarray, filters: list[int]) -> bytes:
    """An 8-bit grey PNG whose rows use the given filter types (0 None ... 4 Paeth)."""
    height, width = pixels.shape
    rows, previous = [], np.zeros(width, np.int16)
    for y in range(height):
        row = pixels[y].astype(np.int16)
        kind = filters[y % len(filters)]
        if kind == 1:
            data = (row - np.concatenate([[0], row[:-1]])) % 256
        elif kind == 2:
            data = (row - previous) % 256
        elif kind == 3:
            data = (row - (np.concatenate([[0], row[:-1]]) + previous) // 2) % 256
        elif kind == 4:
            data = (row - _paeth(np.concatenate([[0], row[:-1]]), previous,
                                 np.concatenate([[0], previous[:-1]]))) % 256  # fmt: skip
        else:
            data = row
        rows.append(bytes([kind]) + data.astype(np.uint8).tobytes())
        previous = row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        png.SIGNATURE + png._chunk(b"IHDR", ihdr)
        + png._chunk(b"IDAT", zlib.compress(b"".join(rows))) + png._chunk(b"IEND", b"")
    )  # fmt: skip


def _paeth(left: np.ndarray, up: np.ndarray, corner: np.ndarray) -> np.ndarray:
    """The PNG spec's predictor, vectorised over a row (inputs as int16)."""
    guess = left + up - corner
    to_left, to_up, to_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
    return np.where(
        (to_left <= to_up) & (to_left <= to_corner), left, np.where(to_up <= to_corner, up, corner)
    )


@pytest.mark.parametrize("filters", [[0], [1], [2], [0, 1, 2], [2, 1], [3], [4], [4, 0, 3, 1, 2]])
def test_fast_path_unfilters_like_pillow(filters: list[int]) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    data = filtered_png(pixels, filters)
    header = png.read_header(data, 2048)
    np.testing.assert_array_equal(png.decode_grey(data, header), pixels)
    with Image.open(io.BytesIO(data)) as image:
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_encoder_round_trips_through_pillow() -> None:
    pixels = digit()
    with Image.open(io.BytesIO(png.encode_grey8(pixels))) as image:
        assert image.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_28x28_grey_passes_untouched() -> None:
    pixels = digit()
    out = codec.decode_image(pillow_png(Image.fromarray(pixels)), OPTIONS, 2048)
    np.testing.assert_allclose(out, pixels / 255, atol=1e-6)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "P+transparency", "RGB", "RGBA", "I;16"])
def test_every_png_mode_decodes_to_the_same_digit(mode: str) -> None:
    pixels = digit()
    image, save = Image.fromarray(pixels), {}
    if mode == "I;16":
        image = Image.fromarray(pixels.astype(np.uint16) * 257)
    elif mode == "P+transparency":
        image = image.convert("P")
        save = {"transparency": int(image.getpixel((0, 0)))}  # the black background
    else:
        image = image.convert(mode)
    out = codec.decode_image(pillow_png(image, **save), OPTIONS, 2048)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert np.abs(out - pixels / 255).mean() < 0.02, mode


def test_interlaced_png_decodes() -> None:
    pixels = np.random.default_rng(5).integers(0, 256, (28, 28), dtype=np.uint8)
    data = grey_png(pixels, interlace=True)  # Adam7, which Pillow cannot write
    out = codec.decode_image(data, codec.ImageOptions(invert="false"), 2048)
    np.testing.assert_allclose(out, pixels / 255, atol=1e-6)


def test_transparent_background_keeps_dark_ink() -> None:
    rgba = np.zeros((28, 28, 4), np.uint8)  # fully transparent
    rgba[8:20, 12:16] = (0, 0, 0, 255)  # black ink
    out = codec.decode_image(pillow_png(Image.fromarray(rgba)), OPTIONS, 2048)
    assert out[10, 13] > 0.9 and out[0, 0] < 0.1  # inverted to light ink on black


def test_transparent_background_keeps_light_ink() -> None:
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[8:20, 12:16] = (255, 255, 255, 255)
    out = codec.decode_image(pillow_png(Image.fromarray(rgba)), OPTIONS, 2048)
    assert out[10, 13] > 0.9 and out[0, 0] < 0.1


@pytest.mark.parametrize(("invert", "expect_ink"), [("auto", 1.0), ("true", 1.0), ("false", 0.0)])
def test_dark_ink_on_paper(invert: str, expect_ink: float) -> None:
    paper = 255 - digit()
    out = codec.decode_image(pillow_png(Image.fromarray(paper)), codec.ImageOptions(invert), 2048)  # type: ignore[arg-type]
    assert out[14, 14] == pytest.approx(expect_ink, abs=0.01)


def test_big_image_is_fitted_like_mnist() -> None:
    big = np.zeros((300, 200), np.uint8)
    big[50:250, 90:110] = 255  # a tall bar, off to one side
    out = codec.decode_image(pillow_png(Image.fromarray(big)), OPTIONS, 2048)
    rows = np.flatnonzero(out.max(axis=1) > 0.1)
    assert rows[-1] - rows[0] + 1 in (20, 21)  # the long side fitted to 20 pixels
    mass = out / out.sum()
    cy, cx = (mass.sum(1) * np.arange(28)).sum(), (mass.sum(0) * np.arange(28)).sum()
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1  # centred by mass


def test_stretch_resizes_the_whole_image() -> None:
    big = np.zeros((56, 56), np.uint8)
    big[:, :28] = 255
    out = codec.decode_image(
        pillow_png(Image.fromarray(big)), codec.ImageOptions("false", "stretch"), 2048
    )
    assert out[:, :13].mean() > 0.95 and out[:, 15:].mean() < 0.05


def test_header_refuses_huge_images_before_decoding() -> None:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    data = png.SIGNATURE + png._chunk(b"IHDR", ihdr) + png._chunk(b"IEND", b"")
    with pytest.raises(ImageTooLarge, match="100000x100000"):
        codec.decode_image(data, OPTIONS, 2048)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a PNG"),
        (b"GIF89a" + b"\0" * 40, "not a PNG"),
        (png.encode_grey8(digit())[:-20], "truncated|corrupt|IEND"),
    ],
)
def test_broken_files_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImage, match=message):
        codec.decode_image(data, OPTIONS, 2048)


def test_bad_crc_is_refused() -> None:
    data = bytearray(png.encode_grey8(digit()))
    data[40] ^= 0xFF  # inside the IDAT chunk
    with pytest.raises(InvalidImage, match="CRC|corrupt"):
        codec.decode_image(bytes(data), OPTIONS, 2048)


def test_gif_and_strip() -> None:
    frames = np.stack([digit(), 255 - digit(), digit()])
    with Image.open(io.BytesIO(frames_codec.gif_bytes(frames))) as gif:
        assert gif.n_frames == 3 and gif.size == (28, 28)
    with Image.open(io.BytesIO(frames_codec.strip_png(frames))) as strip:
        assert strip.size == (84, 28)


def test_base64_accepts_data_urls_and_line_breaks() -> None:
    assert text.b64decode("data:image/png;base64,aGVs\nbG8=", "image") == b"hello"
    with pytest.raises(Exception, match="image is not valid base64"):
        text.b64decode("not base64!", "image")


@pytest.mark.parametrize(
    ("accept", "fmt", "offered", "chosen"),
    [
        (None, None, ("png", "json"), "png"),
        ("*/*", None, ("png", "json"), "png"),
        ("application/json", None, ("png", "json"), "json"),
        ("image/*;q=0.5, application/json", None, ("png", "json"), "json"),
        ("image/*", None, ("json", "gif", "png"), "gif"),
        ("image/png", "json", ("png", "json"), "json"),
        ("text/html, */*;q=0.1", None, ("json",), "json"),
    ],
)
def test_negotiation(accept: str | None, fmt: str | None, offered: tuple, chosen: str) -> None:
    assert choose_format(accept, fmt, offered) == chosen


@pytest.mark.parametrize(
    ("accept", "fmt"), [("image/gif", None), (None, "gif"), ("image/png;q=0", None)]
)
def test_negotiation_refuses(accept: str | None, fmt: str | None) -> None:
    with pytest.raises(NotAcceptable):
        choose_format(accept, fmt, ("json",))


@pytest.mark.parametrize("filters", [[0], [1], [2], [3], [4], [4, 0, 3, 1, 2]])
def test_canonical_file_holds_the_same_pixels(filters: list[int]) -> None:
    """What the model's batch decodes: IHDR, one stored IDAT of the same filtered rows, IEND."""
    pixels = np.random.default_rng(5).integers(0, 256, (28, 28), dtype=np.uint8)
    data = filtered_png(pixels, filters)
    canonical = png.canonical_grey8(data, png.read_header(data, 2048))
    header = png.read_header(canonical, 28)
    np.testing.assert_array_equal(png.decode_grey(canonical, header), pixels)
    with Image.open(io.BytesIO(canonical)) as image:
        np.testing.assert_array_equal(np.asarray(image), pixels)


def _grey_file(rows: bytes, stream: bytes | None = None) -> bytes:
    ihdr = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)
    idat = zlib.compress(rows) if stream is None else stream
    return (
        png.SIGNATURE + png._chunk(b"IHDR", ihdr)
        + png._chunk(b"IDAT", idat) + png._chunk(b"IEND", b"")
    )  # fmt: skip


ROWS = bytes(29 * 28)  # 28 rows of filter 0 and 28 black pixels


@pytest.mark.parametrize(
    ("data", "cause"),
    [
        (_grey_file(ROWS[:-29]), "has 783 bytes"),  # a row short: libpng would crash the process
        (_grey_file(ROWS + bytes(29)), "has 813 bytes"),
        (_grey_file(b"", zlib.compress(ROWS)[:-4]), "ends before its compressed stream"),
        (_grey_file(bytes([5]) + ROWS[1:]), "row filter 5 does not exist"),
        (_grey_file(ROWS[: 29 * 27] + bytes([255]) + ROWS[29 * 27 + 1 :]), "row filter 255"),
        (_grey_file(b"", b"not zlib at all"), "pixel data is corrupt"),
        (_grey_file(ROWS)[:-5], "truncated"),
    ],
    ids=["short", "long", "no-stream-end", "filter-5", "filter-255", "not-zlib", "no-iend"],
)
def test_canonical_file_refuses_what_the_batch_must_not_see(data: bytes, cause: str) -> None:
    header = png.read_header(data, 2048)
    with pytest.raises(InvalidImage, match=cause):
        png.canonical_grey8(data, header)
    with pytest.raises(InvalidImage):
        png.decode_grey(data, header)  # the event loop's own decoder agrees
