"""KServe's own Python SDK (`InferenceRESTClient`, protocol v2) against a real uvicorn: live,
ready, model ready, one binary infer answered as the native verb answers it, and an error whose
message it reads from our `error` member."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
from kserve import InferenceRESTClient, InferInput, InferRequest, InferResponse, RESTConfig

from tests.conftest import png_bytes
from tests.support import Service
from tests.test_oip import native_reconstruct


def digit_request(model: str, pixels: np.ndarray) -> InferRequest:
    images = InferInput("images", [1, 28, 28], "UINT8")
    images.set_data_from_numpy(pixels.reshape(1, 28, 28), binary_data=True)
    return InferRequest(model, [images], request_id="k-1")


async def converse(url: str, pixels: np.ndarray) -> tuple[list[bool], InferResponse, str]:
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
    try:
        health = [
            await client.is_server_live(url),
            await client.is_server_ready(url),
            await client.is_model_ready(url, "mnist-ae"),
        ]
        answer = await client.infer(url, digit_request("mnist-ae", pixels), "mnist-ae")
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await client.infer(url, digit_request("nope", pixels), "nope")
        return health, answer, str(refused.value)
    finally:
        await client.close()


def test_kserve_client_speaks_to_the_service(
    api: Service, http: httpx.Client, heldout: tuple
) -> None:
    pixels = heldout[0][9]
    health, answer, error = asyncio.run(converse(api.url, pixels))
    assert health == [True, True, True]
    assert answer.id == "k-1" and answer.model_name == "mnist-ae"
    outputs = {output.name: output.as_numpy() for output in answer.outputs}
    expected, mse = native_reconstruct(http, png_bytes(pixels), "&invert=false")
    assert np.array_equal(outputs["reconstructions"].reshape(28, 28), expected)
    assert outputs["mse"][0] == np.float32(mse)
    assert "no model 'nope'" in error and "404" in error
