"""The scripted serving methods against the plain model and numpy: the same pixels, the same
embeddings, whichever CPU kernels a batch size picks, and whether the PNGs were decoded on the
event loop or in the batch."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from service.codec import digits as codec
from service.codec import png
from service.core.batching import MicroBatcher
from service.core.inference import Inference
from service.fronts import stages
from service.metrics import Metrics
from service.runtime import model as runtime
from service.runtime import serving
from service.runtime.model import METHODS, ONEDNN_FROM_BATCH, Engine, ModelLoadError, load_model
from service.settings import DEFAULT_MODEL_PATH, Settings
from service.state import Runtime
from tests.test_codec import filtered_png


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(load_model(DEFAULT_MODEL_PATH, torch.device("cpu")))


def numpy_pixels(y: np.ndarray) -> np.ndarray:
    """The rounding the service had in numpy before it was scripted: the reference."""
    return np.rint(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)


def test_rounding_to_pixels_matches_numpy() -> None:
    # Every value that lands exactly half-way between two levels, and the clamped ends.
    halves = (np.arange(256, dtype=np.float32) + 0.5) / 255
    edges = np.array([-1.0, -0.0, 0.0, 1.0, 1.5, 1e-9, 1 - 1e-7], np.float32)
    y = np.concatenate([halves, edges, np.random.default_rng(0).random(4096, np.float32)])
    scripted = serving._to_uint8(torch.from_numpy(y)).numpy()
    np.testing.assert_array_equal(scripted, numpy_pixels(y))


def test_serving_matches_the_plain_model(engine: Engine) -> None:
    model = engine.model
    x = torch.rand(8, 28, 28)  # (8, 28, 28)
    with torch.inference_mode():
        z = model.module.encode(x[:, None])  # (8, D)
        y = model.module.decode(z)[:, 0]  # (8, 28, 28)
        pixels, mse = model.serving(x)
        embeddings = model.serving.encode(x)
    # The serving layers are rebuilt as matrix products (layers.py): sums in another order.
    np.testing.assert_allclose(embeddings.numpy(), z.numpy(), rtol=1e-4, atol=1e-5)
    assert np.abs(pixels.numpy().astype(int) - numpy_pixels(y.numpy())).max() <= 1
    want = (y - x).square().mean(dim=(1, 2)).numpy()
    np.testing.assert_allclose(mse.numpy(), want, rtol=1e-4)


def test_call_holds_its_inputs_only_while_it_runs(engine: Engine) -> None:
    scripted = engine.model.serving
    x = torch.rand(4, 28, 28)  # (4, 28, 28)
    with torch.inference_mode():
        (embeddings,) = serving.call(scripted, "encode", x)  # one output, as a tuple
        pixels, mse = serving.call(scripted, "forward", x)
        assert embeddings.shape == (4, 64) and pixels.shape == (4, 28, 28) and mse.shape == (4,)
        assert scripted.held == []
        with pytest.raises(RuntimeError):
            serving.call(scripted, "encode", torch.rand(4, 3, 3))  # too small for the encoder
    assert scripted.held == []


def test_a_digit_alone_and_in_a_large_batch_agree(engine: Engine) -> None:
    """A lone digit runs on ATen's kernels, a batch of 16 or more on oneDNN's."""
    digits = np.random.default_rng(1).random((ONEDNN_FROM_BATCH, 28, 28), np.float32)
    ((alone,), version) = engine.run("encode", digits[:1])
    ((batched,), _) = engine.run("encode", digits)
    assert version == engine.model.version
    np.testing.assert_allclose(alone[0], batched[0], rtol=1e-4, atol=1e-5)
    (pixels_alone, mse_alone), _ = engine.run("reconstruct", digits[:1])
    (pixels_batched, mse_batched), _ = engine.run("reconstruct", digits)
    assert np.abs(pixels_alone[0].astype(int) - pixels_batched[0].astype(int)).max() <= 1
    np.testing.assert_allclose(mse_alone[0], mse_batched[0], rtol=1e-4)


def _files(datas: list[bytes], invert: str) -> np.ndarray:
    items = codec.png_items(len(datas))
    for i, data in enumerate(datas):
        items[i] = codec.model_png(data, png.read_header(data, 2048), codec.ImageOptions(invert))
    return items


@pytest.mark.parametrize("invert", ["auto", "true", "false"])
def test_files_decoded_in_the_batch_are_what_the_event_loop_makes(invert: str) -> None:
    """Bit for bit, whatever the rows' filters, on dark and on light paper."""
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(6)]
    images[1][:, :] = 255  # light paper, dark ink: "auto" inverts it
    images[1][10:18, 12:16] = 0
    images[2] = 255 - images[1]
    datas = [filtered_png(image, filters) for image, filters in
             zip(images, ([0], [4], [1, 2], [3], [4, 0, 3, 1, 2], [2]), strict=True)]  # fmt: skip
    options = codec.ImageOptions(invert)  # type: ignore[arg-type]
    want = np.stack([codec.decode_image(data, options, 2048) for data in datas])
    got = serving.to_model_input(*runtime._png_args(_files(datas, invert)), 8)
    np.testing.assert_array_equal(got[:6].numpy(), want)
    assert not got[6:].any()  # the padding


def test_files_and_arrays_give_the_same_answers(engine: Engine) -> None:
    digits = np.random.default_rng(2).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    datas = [png.encode_grey8(d) for d in digits]
    arrays = np.stack([codec.decode_image(d, codec.ImageOptions(), 2048) for d in datas])
    (z_files,), _ = engine.run("encode_png", _files(datas, "auto"))
    (z_arrays,), _ = engine.run("encode", arrays)
    np.testing.assert_array_equal(z_files, z_arrays)
    (pixels_files, mse_files), _ = engine.run("reconstruct_png", _files(datas, "auto"))
    (pixels_arrays, mse_arrays), _ = engine.run("reconstruct", arrays)
    np.testing.assert_array_equal(pixels_files, pixels_arrays)
    np.testing.assert_array_equal(mse_files, mse_arrays)


def test_pixels_beside_files_in_the_batch_are_what_the_core_made_of_them() -> None:
    """Raw pixels are never inverted, even on light paper, and scale as the float path does;
    PNG files beside them in the same batch keep their own rule."""
    rng = np.random.default_rng(11)
    pixels = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)  # (4, 28, 28)
    pixels[1] = 255  # light paper: "auto" would invert a PNG of it, never its pixels
    pixels[1, 10:18, 12:16] = 0
    items = np.concatenate([codec.pixel_items(pixels[:2]), _files([png.encode_grey8(pixels[1])],
                            "auto"), codec.pixel_items(pixels[2:])])  # fmt: skip
    got = serving.to_model_input(*runtime._png_args(items), 8).numpy()  # (8, 28, 28)
    as_floats = np.multiply(pixels, np.float32(1 / 255), dtype=np.float32)  # the core's way
    np.testing.assert_array_equal(got[[0, 1, 3, 4]], as_floats)
    np.testing.assert_array_equal(got[2], 1 - as_floats[1])  # the same pixels as a PNG: inverted
    assert not got[5:].any()  # the padding


def test_one_forward_pass_serves_a_native_png_and_oip_pixels(
    engine: Engine, heldout: tuple
) -> None:
    """The native front's PNG file and the OIP front's UINT8 pixels, made into the core's input
    by the fronts' own stages and submitted together, run as one engine call; each gets what
    the float path gives the same two digits as one batch."""
    digits = heldout[0][:2]  # (2, 28, 28) uint8, MNIST polarity
    calls: list[tuple[str, int]] = []
    record = engine.run

    def run(method: str, items: np.ndarray) -> tuple[tuple[np.ndarray, ...], str]:
        calls.append((method, len(items)))
        return record(method, items)

    async def scenario() -> tuple[tuple[np.ndarray, ...], ...]:
        batcher = MicroBatcher(run, METHODS, max_batch_size=8, max_delay_s=0, max_queue=8)
        batcher.start()
        with ThreadPoolExecutor(1) as pool:
            rt = Runtime(Settings(), Metrics(), engine=engine, codec_pool=pool)
            native = await stages.png_input(
                rt, [("body", png.encode_grey8(digits[0]))], codec.ImageOptions("false")
            )
        oip = stages.pixel_input(rt, digits[1:])
        core = Inference(batcher, 10.0)
        answers = await asyncio.gather(core.reconstruct(native), core.reconstruct(oip))
        await batcher.stop()
        return tuple(answer[:2] for answer in answers)

    (native_pixels, native_mse), (oip_pixels, oip_mse) = asyncio.run(scenario())
    assert calls == [("reconstruct_png", 2)]
    as_floats = np.multiply(digits, np.float32(1 / 255), dtype=np.float32)  # (2, 28, 28)
    (want_pixels, want_mse), _ = engine.run("reconstruct", as_floats)
    np.testing.assert_array_equal(np.concatenate([native_pixels, oip_pixels]), want_pixels)
    np.testing.assert_array_equal(np.concatenate([native_mse, oip_mse]), want_mse)


def test_warm_up_refuses_a_batch_that_misreads_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start-up and reload check the pixel rows too: here made column by column."""

    def transposed(images: np.ndarray) -> np.ndarray:
        items = codec.png_items(len(images))
        for i, image in enumerate(images):
            items[i] = image.T.tobytes(), codec.RAW_PIXELS
        return items

    monkeypatch.setattr(codec, "pixel_items", transposed)
    with pytest.raises(ModelLoadError, match="pixels read in the batch differ"):
        load_model(DEFAULT_MODEL_PATH, torch.device("cpu"))


def test_without_torchvision_image_library_pngs_are_decoded_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torchvision has deprecated its image codecs: where they are gone, the service still
    serves, decoding every PNG on the event loop."""
    monkeypatch.setattr(serving, "load_png_decoder", lambda: False)
    model = load_model(DEFAULT_MODEL_PATH, torch.device("cpu"))
    assert not model.decodes_png
    (pixels, mse), _ = Engine(model).run("reconstruct", np.zeros((2, 28, 28), np.float32))
    assert pixels.shape == (2, 28, 28) and mse.shape == (2,)
    rt = Runtime(Settings(), Metrics(), engine=Engine(model))
    digits = np.zeros((2, 28, 28), np.uint8)
    assert stages.pixel_input(rt, digits) is digits  # to the float path, as they are
