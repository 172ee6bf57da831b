"""The asynchronous client: `async with AsyncClient() as ae: await ae.encode("digit.png")`."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import httpx
import numpy as np
from PIL import Image

from digit_ae_client import calls
from digit_ae_client._core import Attempts, Call, Config, new_request_id
from digit_ae_client.calls import Embeddings, Endpoint, Fit, Invert, Method
from digit_ae_client.images import Images
from digit_ae_client.results import Interpolation, Reconstruction

T = TypeVar("T")


class AsyncClient:
    """The same verbs, options and errors as `Client`, awaited."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        retry_budget: float = 30.0,
    ) -> None:
        self.config = Config.resolve(base_url, api_key, timeout, retries, retry_budget)
        self._http = httpx.AsyncClient(
            base_url=self.config.base_url, headers=self.config.headers(), timeout=timeout
        )

    async def encode(
        self, images: Images, *, invert: Invert = None, fit: Fit = None,
        request_id: str | None = None,
    ) -> np.ndarray:  # fmt: skip
        """Embeddings (N, D) float32, one row per image, in order."""
        return await self._send(calls.encode(images, invert, fit), request_id)

    async def decode(
        self, embeddings: Embeddings, *, request_id: str | None = None
    ) -> list[Image.Image]:
        """The 28×28 grey digit of each embedding ((D,) or (N, D))."""
        return await self._send(calls.decode(embeddings), request_id)

    async def reconstruct(
        self, images: Images, *, invert: Invert = None, fit: Fit = None,
        request_id: str | None = None,
    ) -> Reconstruction:  # fmt: skip
        """The model's redrawing of each image and its MSE."""
        return await self._send(calls.reconstruct(images, invert, fit), request_id)

    async def interpolate(
        self, start: Endpoint, end: Endpoint, steps: int = 10, method: Method = "linear", *,
        invert: Invert = None, fit: Fit = None, request_id: str | None = None,
    ) -> Interpolation:  # fmt: skip
        """`steps` frames between two images or embeddings, both ends included."""
        call = calls.interpolate(start, end, steps, method, invert, fit)
        return await self._send(call, request_id)

    async def model(self, *, request_id: str | None = None) -> dict[str, Any]:
        """The live model's metadata, device and limits."""
        return await self._send(calls.model(), request_id)

    async def ready(self, *, request_id: str | None = None) -> bool:
        """True once the model is loaded and warm; Unreachable when nothing answers."""
        return await self._send(calls.ready(), request_id)

    async def _send(self, call: Call[T], request_id: str | None) -> T:
        request_id = request_id or new_request_id()
        request = self._http.build_request(
            call.method, call.path, params=call.params, content=call.body,
            headers=call.headers(request_id),
        )  # fmt: skip
        attempts = Attempts(call, self.config, request_id)
        while True:  # bounded: Attempts stops after `retries` retries or the time budget
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                delay = attempts.after_error(exc)
            else:
                retry_in = attempts.after_response(response)
                if retry_in is None:
                    return call.read(response)
                delay = retry_in
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
