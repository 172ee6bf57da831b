"""The Open Inference Protocol through tritonclient, a client no one here wrote, against a real
uvicorn: health, metadata, each of the four models with JSON and binary tensors, and answers equal
to the native verbs' for the same digits, bit for bit (single requests: a batch of another size
may run other kernels)."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from PIL import Image
from tritonclient.utils import InferenceServerException

from tests.conftest import png_bytes, read_png
from tests.scrape import metric
from tests.support import Service, start_service

NAME = "mnist-ae"
PNG = {"content-type": "image/png"}


@pytest.fixture()
def client(api: Service) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(api.url.removeprefix("http://"))


def tensor(name: str, array: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    made = triton.InferInput(name, list(array.shape), datatype)
    return made.set_data_from_numpy(array, binary_data=binary)


def wanted(*names: str, binary: bool = True) -> list[triton.InferRequestedOutput]:
    return [triton.InferRequestedOutput(name, binary_data=binary) for name in names]


def native_reconstruct(http: httpx.Client, png: bytes, query: str = "") -> tuple[np.ndarray, float]:
    body = http.post(f"/reconstruct?format=json{query}", content=png, headers=PNG).json()
    return read_png(base64.b64decode(body["images"][0])), body["mse"][0]


def test_server_and_models_are_live_ready_and_described(
    client: triton.InferenceServerClient, model_metadata: dict
) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    version = model_metadata["version"]
    names = [NAME, f"{NAME}-encoder", f"{NAME}-decoder", f"{NAME}-interpolator"]
    for name in names:
        assert client.is_model_ready(name) and client.is_model_ready(name, version)
    assert not client.is_model_ready(NAME, "0.0.0-not-served")
    meta = client.get_model_metadata(NAME)
    assert meta["versions"] == [version] and meta["platform"] == "pytorch_torchscript"
    assert meta["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in meta["outputs"]] == [
        ("reconstructions", "UINT8", [-1, 28, 28]), ("mse", "FP32", [-1]),
    ]  # fmt: skip
    assert "BYTES" in meta["parameters"]["input.images"]
    decoder = client.get_model_metadata(f"{NAME}-decoder", version)
    assert decoder["inputs"] == [{"name": "embeddings", "datatype": "FP32", "shape": [-1, 64]}]
    walk = client.get_model_metadata(f"{NAME}-interpolator")
    assert [i["name"] for i in walk["inputs"]] == ["start", "end"]
    assert {"parameter.steps", "parameter.method"} <= set(walk["parameters"])


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_uint8_digit_reconstructs_as_native_png_does(
    client: triton.InferenceServerClient, http: httpx.Client, heldout: tuple, binary: bool
) -> None:
    for pixels in heldout[0][:3]:
        digit = pixels[None]  # (1, 28, 28) uint8
        result = client.infer(
            NAME, [tensor("images", digit, "UINT8", binary)],
            outputs=wanted("reconstructions", "mse", binary=binary),
        )  # fmt: skip
        expected, mse = native_reconstruct(http, png_bytes(pixels), "&invert=false")
        assert np.array_equal(result.as_numpy("reconstructions")[0], expected)
        assert result.as_numpy("mse")[0] == np.float32(mse)


def test_fp32_digit_answers_as_its_uint8_pixels(
    client: triton.InferenceServerClient, heldout: tuple
) -> None:
    digit = heldout[0][3][None]
    as_uint8 = client.infer(NAME, [tensor("images", digit, "UINT8", True)])
    unit = digit.astype(np.float32) * np.float32(1 / 255)  # as an 8-bit PNG reads
    as_fp32 = client.infer(NAME, [tensor("images", unit, "FP32", True)])
    for name in ("reconstructions", "mse"):
        assert np.array_equal(as_fp32.as_numpy(name), as_uint8.as_numpy(name))


def test_png_bytes_any_size_answer_as_native(
    client: triton.InferenceServerClient, http: httpx.Client, heldout: tuple
) -> None:
    """A 112x112 dark-on-light RGB drawing: inverted and fitted by the native rules."""
    big = Image.fromarray(heldout[0][4]).resize((112, 112), Image.Resampling.BILINEAR)
    png = png_bytes(255 - np.asarray(big), "RGB")
    files = np.array([png], dtype=np.object_)
    result = client.infer(NAME, [tensor("images", files, "BYTES", True)])
    expected, mse = native_reconstruct(http, png)
    assert np.array_equal(result.as_numpy("reconstructions")[0], expected)
    assert result.as_numpy("mse")[0] == np.float32(mse)
    as_text = np.array([base64.b64encode(png).decode()], dtype=np.object_)
    again = client.infer(
        NAME, [tensor("images", as_text, "BYTES", False)], parameters={"invert": "auto"}
    )
    assert np.array_equal(again.as_numpy("reconstructions"), result.as_numpy("reconstructions"))


def test_encoder_and_decoder_answer_as_native(
    client: triton.InferenceServerClient, http: httpx.Client, heldout: tuple
) -> None:
    pixels = heldout[0][5]
    encoded = client.infer(f"{NAME}-encoder", [tensor("images", pixels[None], "UINT8", True)])
    embedding = encoded.as_numpy("embeddings")  # (1, 64) float32
    native = http.post("/encode?invert=false", content=png_bytes(pixels), headers=PNG).json()
    assert np.array_equal(embedding, np.asarray(native["embeddings"], np.float32))
    for binary in (True, False):
        decoded = client.infer(
            f"{NAME}-decoder", [tensor("embeddings", embedding, "FP32", binary)],
            outputs=wanted("images", binary=binary),
        )  # fmt: skip
        drawn = http.post("/decode", json={"embedding": embedding[0].tolist()})
        assert np.array_equal(decoded.as_numpy("images")[0], read_png(drawn.content))


def test_interpolator_answers_as_native(
    client: triton.InferenceServerClient, http: httpx.Client
) -> None:
    start, end = np.random.default_rng(3).normal(size=(2, 1, 64)).astype(np.float32)
    result = client.infer(
        f"{NAME}-interpolator",
        [tensor("start", start, "FP32", True), tensor("end", end, "FP32", False)],
        parameters={"steps": 6, "method": "slerp"},
    )
    native = http.post(
        "/interpolate",
        json={"start": start[0].tolist(), "end": end[0].tolist(), "steps": 6, "method": "slerp"},
    ).json()["frames"]
    assert result.as_numpy("t").tolist() == [frame["t"] for frame in native]
    expected = np.asarray([frame["embedding"] for frame in native], np.float32)
    assert np.array_equal(result.as_numpy("embeddings"), expected)
    frames = [read_png(base64.b64decode(frame["image"])) for frame in native]
    assert np.array_equal(result.as_numpy("frames"), np.stack(frames))


def test_a_batch_of_digits_and_requested_outputs(
    client: triton.InferenceServerClient, heldout: tuple
) -> None:
    digits = heldout[0][:5]  # (5, 28, 28)
    result = client.infer(
        NAME, [tensor("images", digits, "UINT8", True)], outputs=wanted("mse", binary=False)
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["mse"]
    assert result.as_numpy("reconstructions") is None
    mse = result.as_numpy("mse")
    alone = [client.infer(NAME, [tensor("images", d[None], "UINT8", True)]) for d in digits]
    np.testing.assert_allclose(mse, [r.as_numpy("mse")[0] for r in alone], rtol=1e-5)
    both = client.infer(NAME, [tensor("images", digits, "UINT8", False)])
    assert both.as_numpy("reconstructions").shape == (5, 28, 28)


def test_errors_are_the_clients_own_exception_with_our_message(
    client: triton.InferenceServerClient, heldout: tuple
) -> None:
    flat = heldout[0][0].reshape(1, 784)
    with pytest.raises(InferenceServerException) as wrong_shape:
        client.infer(NAME, [tensor("images", flat, "UINT8", True)])
    assert wrong_shape.value.status() == "400"
    assert "input 'images' has shape [1, 784]" in wrong_shape.value.message()
    with pytest.raises(InferenceServerException) as unknown_model:
        client.infer("no-such-model", [tensor("images", heldout[0][:1], "UINT8", True)])
    assert unknown_model.value.status() == "404"
    assert "no model 'no-such-model'" in unknown_model.value.message()
    with pytest.raises(InferenceServerException) as unknown_version:
        client.infer(NAME, [tensor("images", heldout[0][:1], "UINT8", True)], model_version="0.0.0")
    assert unknown_version.value.status() == "404"
    assert "has no version '0.0.0'" in unknown_version.value.message()
    with pytest.raises(InferenceServerException) as metadata:
        client.get_model_metadata("no-such-model")
    assert "no model 'no-such-model'" in metadata.value.message()


def test_png_input_decodes_like_the_codec(heldout: tuple) -> None:
    """The test's own PNG maker round-trips the pixels the tests compare against."""
    with Image.open(io.BytesIO(png_bytes(heldout[0][0]))) as image:
        assert np.array_equal(np.asarray(image), heldout[0][0])


SHARED = 8  # requests of each front in a round


async def _both_fronts_at_once(url: str, digits: np.ndarray) -> list[int]:
    """Each digit once as a native PNG and once as OIP UINT8 pixels, all sent at once."""
    head = orjson.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 28, 28],
                                     "parameters": {"binary_data_size": 784}}]})  # fmt: skip
    oip = {"inference-header-content-length": str(len(head))}
    limits = httpx.Limits(max_connections=2 * len(digits))
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        answers = await asyncio.gather(
            *[http.post("/reconstruct", content=png_bytes(d), headers=PNG) for d in digits],
            *[http.post(f"/v2/models/{NAME}/infer", content=head + d.tobytes(), headers=oip)
              for d in digits],
        )  # fmt: skip
    return [answer.status_code for answer in answers]


def test_oip_pixels_and_native_pngs_share_forward_passes(tmp_path: Path, heldout: tuple) -> None:
    """UINT8 digits through OIP join the native PNG files' batches (`reconstruct_png`).

    A batch holds at most 2 x SHARED items and, once one has run, waits up to 2 s to fill, so
    the requests of a round gather in few batches; a batch of more than SHARED items cannot be
    of one front alone. The first batch of a round starts with whatever has come in at once,
    so a round may split in two halves of SHARED: then the next round is tried."""
    env = {"AE_MAX_BATCH_SIZE": str(2 * SHARED), "AE_MAX_BATCH_DELAY_MS": "2000"}
    with start_service(tmp_path, env) as service, service.client() as http:
        for _ in range(3):
            before = _png_batches(http)
            statuses = asyncio.run(_both_fronts_at_once(service.url, heldout[0][:SHARED]))
            assert statuses == [200] * 2 * SHARED
            batches, items, small = np.subtract(_png_batches(http), before)
            assert items == 2 * SHARED  # every digit of both fronts in `reconstruct_png` batches
            assert metric(http, "ae_batch_size_count", method="reconstruct") == 0
            if small < batches:  # a batch of more than SHARED: both fronts in one forward pass
                return
    pytest.fail("no batch held requests of both fronts in three rounds")


def _png_batches(http: httpx.Client) -> tuple[float, float, float]:
    """`reconstruct_png` batches, their items, and the batches of SHARED items or fewer."""
    labels = {"method": "reconstruct_png"}
    return (
        metric(http, "ae_batch_size_count", **labels),
        metric(http, "ae_batch_size_sum", **labels),
        metric(http, "ae_batch_size_bucket", le=f"{float(SHARED)}", **labels),
    )
