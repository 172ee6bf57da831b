"""The Python client against a real `python -m service` on loopback: every verb, every input
type, sync and async, and the service's refusals as typed exceptions."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from digit_ae_client import ApiError, AsyncClient, BadRequest, Client, Unauthorized, ValidationError
from PIL import Image, ImageDraw

from tests.support import Service, start_service

KEY = "client-test-key"


def zero() -> Image.Image:
    """Light ink on black, 28×28, as MNIST draws it."""
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).ellipse((8, 5, 20, 23), outline=255, width=3)
    return image


def one() -> Image.Image:
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).line((14, 4, 14, 24), fill=255, width=3)
    return image


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.int16)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with start_service(tmp_path_factory.mktemp("client"), {"AE_API_KEYS": KEY}) as running:
        yield running


@pytest.fixture()
def ae(service: Service) -> Iterator[Client]:
    with Client(service.url, api_key=KEY, retries=0) as client:
        yield client


def test_every_input_type_encodes_to_the_same_embedding(ae: Client, tmp_path: Path) -> None:
    path = tmp_path / "zero.png"
    zero().save(path)
    grey = np.asarray(zero())  # (28, 28) uint8
    inputs = [str(path), path, png(zero()), zero(), grey, grey / 255.0]
    rows = ae.encode(inputs)
    assert rows.shape == (6, 64)
    assert rows.dtype == np.float32
    np.testing.assert_allclose(rows, np.repeat(rows[:1], 6, axis=0), atol=1e-5)
    np.testing.assert_allclose(ae.encode(path), rows[:1], atol=1e-5)  # one image -> (1, D)


def test_a_numpy_batch_is_many_images(ae: Client) -> None:
    batch = np.stack([np.asarray(zero()), np.asarray(one())])  # (2, 28, 28)
    rows = ae.encode(batch)
    assert rows.shape == (2, 64)
    assert not np.allclose(rows[0], rows[1])


def test_decode_one_embedding_or_many(ae: Client) -> None:
    rows = ae.encode([zero(), one()])
    [single] = ae.decode(rows[0])
    assert (single.size, single.mode) == ((28, 28), "L")
    many = ae.decode(rows.tolist())
    assert len(many) == 2
    assert np.array_equal(pixels(many[0]), pixels(single))


def test_reconstruct_is_decode_of_encode_with_its_error(ae: Client) -> None:
    result = ae.reconstruct([png(zero()), np.asarray(one())])
    assert len(result.images) == len(result.mse) == 2
    assert all(0 <= mse < 0.05 for mse in result.mse)
    redrawn = ae.decode(ae.encode(zero()))[0]
    assert np.abs(pixels(result.images[0]) - pixels(redrawn)).max() <= 1


def test_interpolate_between_images_or_embeddings(ae: Client) -> None:
    rows = ae.encode([zero(), one()])
    path = ae.interpolate(zero(), png(one()), steps=5, method="slerp")
    assert path.method == "slerp"
    assert path.t == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(path.frames) == 5
    assert path.embeddings.shape == (5, 64)
    np.testing.assert_allclose(path.embeddings[[0, -1]], rows, atol=1e-4)
    given = ae.interpolate(rows[0], rows[1].tolist(), steps=3)  # array and list embeddings
    np.testing.assert_allclose(given.embeddings[[0, -1]], rows, atol=1e-6)
    mixed = ae.interpolate(np.asarray(zero()) / 255.0, rows[1], steps=2)
    np.testing.assert_allclose(mixed.embeddings, rows, atol=1e-4)


def test_saved_gif_and_strip_match_the_services(
    ae: Client, service: Service, tmp_path: Path
) -> None:
    rows = ae.encode([zero(), one()])
    path = ae.interpolate(rows[0], rows[1], steps=6)
    path.save_gif(tmp_path / "path.gif")
    path.save_strip(tmp_path / "path.png")
    with Image.open(tmp_path / "path.gif") as gif:
        assert (gif.n_frames, gif.size, gif.info["loop"]) == (6, (28, 28), 0)
    body = {"start": rows[0].tolist(), "end": rows[1].tolist(), "steps": 6}
    key = {"Authorization": f"Bearer {KEY}"}
    served = httpx.post(f"{service.url}/interpolate?format=png", json=body, headers=key, timeout=30)
    assert served.status_code == 200
    with (
        Image.open(tmp_path / "path.png") as mine,
        Image.open(io.BytesIO(served.content)) as theirs,
    ):
        assert mine.size == theirs.size == (28 * 6, 28)
        assert np.array_equal(pixels(mine), pixels(theirs))


def test_model_and_ready(ae: Client) -> None:
    info = ae.model()
    assert info["name"] == "mnist-ae"
    assert info["embedding_dim"] == 64
    assert ae.ready() is True


def test_wrong_length_embedding_is_a_validation_error_with_its_request_id(ae: Client) -> None:
    with pytest.raises(ValidationError) as caught:
        ae.decode([0.5, 1.5], request_id="client-test-422")
    error = caught.value
    assert isinstance(error, ApiError)
    assert error.status == 422
    assert error.request_id == "client-test-422"
    assert error.type == "urn:digit-ae:problem:invalid-request"
    assert error.title == "Invalid request"
    assert error.errors[0]["field"] == "embeddings[0]"
    assert "64" in error.detail
    assert "(request id client-test-422)" in str(error)


def test_other_refusals_are_typed_and_carry_a_request_id(ae: Client) -> None:
    with pytest.raises(ValidationError, match="steps"):
        ae.interpolate(zero(), one(), steps=1)
    with pytest.raises(BadRequest) as caught:
        ae.encode(b"\x89PNG\r\n\x1a\n but not really")  # a PNG signature is sent as it is
    assert caught.value.status == 400
    assert len(caught.value.request_id) == 32  # made up by the client, echoed by the service


def test_a_missing_or_wrong_api_key_is_unauthorized(service: Service) -> None:
    for key in ("", "not-the-key"):  # "": no header, whatever AE_API_KEY says
        with Client(service.url, api_key=key) as stranger, pytest.raises(Unauthorized) as caught:
            stranger.encode(zero(), request_id="no-key")
        assert (caught.value.status, caught.value.request_id) == (401, "no-key")
    with Client(service.url, api_key="") as stranger:  # probes and /model stay open
        assert stranger.ready() and stranger.model()["name"] == "mnist-ae"


def test_async_client_has_the_same_verbs(service: Service) -> None:
    async def session() -> None:
        async with AsyncClient(service.url, api_key=KEY, retries=0) as ae:
            together = await ae.encode([zero(), one()])
            alone = await asyncio.gather(ae.encode(zero()), ae.encode(np.asarray(one())))
            np.testing.assert_allclose(np.concatenate(alone), together, atol=1e-5)
            assert len(await ae.decode(together)) == 2
            result = await ae.reconstruct(png(zero()))
            assert result.images[0].size == (28, 28) and result.mse[0] < 0.05
            path = await ae.interpolate(together[0], one(), steps=4, method="slerp")
            assert len(path.frames) == 4 and path.t[-1] == 1.0
            assert (await ae.model())["embedding_dim"] == 64
            assert await ae.ready() is True
            with pytest.raises(ValidationError) as caught:
                await ae.decode([[1.0] * 3], request_id="async-422")
            assert caught.value.request_id == "async-422"

    asyncio.run(session())
