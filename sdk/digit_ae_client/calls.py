"""Each verb of the service as a `Call`: its request built from Python values, its response
read back into numpy arrays and PIL images. Images travel as base64 PNG in JSON bodies.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any, Literal, TypeAlias

import httpx
import numpy as np
from PIL import Image

from digit_ae_client import images
from digit_ae_client._core import Call, check, json_body, json_object
from digit_ae_client.errors import InvalidInput
from digit_ae_client.images import ImageLike, Images
from digit_ae_client.results import Interpolation, Reconstruction

Embeddings: TypeAlias = Sequence[float] | Sequence[Sequence[float]] | np.ndarray
Endpoint: TypeAlias = ImageLike | Sequence[float]
Invert: TypeAlias = Literal["auto", "true", "false"] | bool | None
Fit: TypeAlias = Literal["mnist", "stretch"] | None
Method: TypeAlias = Literal["linear", "slerp"]


def encode(items: Images, invert: Invert = None, fit: Fit = None) -> Call[np.ndarray]:
    body = {"images": _b64_images(items)}
    return Call("POST", "/encode", _embeddings, _image_params(invert, fit), json_body(body))


def decode(embeddings: Embeddings) -> Call[list[Image.Image]]:
    body = {"embeddings": embedding_rows(embeddings, "embeddings")}
    return Call("POST", "/decode", _images, {"format": "json"}, json_body(body))


def reconstruct(items: Images, invert: Invert = None, fit: Fit = None) -> Call[Reconstruction]:
    body = {"images": _b64_images(items)}
    params = {**_image_params(invert, fit), "format": "json"}
    return Call("POST", "/reconstruct", _reconstruction, params, json_body(body))


def interpolate(
    start: Endpoint,
    end: Endpoint,
    steps: int = 10,
    method: Method = "linear",
    invert: Invert = None,
    fit: Fit = None,
) -> Call[Interpolation]:
    body = {
        "start": _endpoint(start, "start"),
        "end": _endpoint(end, "end"),
        "steps": steps,
        "method": method,
    }
    params = {**_image_params(invert, fit), "format": "json"}
    return Call("POST", "/interpolate", _interpolation, params, json_body(body))


def model() -> Call[dict[str, Any]]:
    return Call("GET", "/model", json_object)


def ready() -> Call[bool]:
    # Not ready is an answer here, not a refusal to wait out.
    return Call("GET", "/readyz", _is_ready, retry_on_503=False)


def embedding_rows(embeddings: Embeddings, where: str) -> list[list[float]]:
    """One embedding (D,) or several (N, D) -> rows of finite floats."""
    try:
        array = np.asarray(embeddings, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: not numbers, nor lists of numbers of one length") from None
    if array.ndim == 1:
        array = array[None, :]  # (D,) -> (1, D)
    if array.ndim != 2 or array.size == 0:
        raise InvalidInput(f"{where}: one embedding is (D,), several (N, D); got {array.shape}")
    if not np.isfinite(array).all():
        raise InvalidInput(f"{where}: embeddings hold NaN or infinite values")
    return [[float(v) for v in row] for row in array]


def is_embedding(value: object) -> bool:
    """A 1-D array or a flat sequence of numbers, as opposed to an image."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1
    if isinstance(value, list | tuple):
        return all(isinstance(v, Real) and not isinstance(v, bool) for v in value)
    return False


def _endpoint(value: Endpoint, where: str) -> str | list[float]:
    if is_embedding(value):
        return embedding_rows(value, where)[0]  # type: ignore[arg-type]
    return images.b64(images.png_bytes(value, where))  # type: ignore[arg-type]


def _b64_images(items: Images) -> list[str]:
    return [
        images.b64(images.png_bytes(image, f"images[{i}]"))
        for i, image in enumerate(images.as_list(items))
    ]


def _image_params(invert: Invert, fit: Fit) -> dict[str, str]:
    params = {}
    if invert is not None:
        params["invert"] = str(invert).lower()  # True -> "true"
    if fit is not None:
        params["fit"] = fit
    return params


def _embeddings(response: httpx.Response) -> np.ndarray:
    body = json_object(response)
    rows = np.asarray(body["embeddings"], dtype=np.float32)  # (N, D)
    if rows.ndim != 2:
        raise ValueError(f"embeddings of shape {rows.shape}")
    return rows


def _images(response: httpx.Response) -> list[Image.Image]:
    return [images.from_b64(text) for text in json_object(response)["images"]]


def _reconstruction(response: httpx.Response) -> Reconstruction:
    body = json_object(response)
    pictures = [images.from_b64(text) for text in body["images"]]
    return Reconstruction(pictures, [float(v) for v in body["mse"]])


def _interpolation(response: httpx.Response) -> Interpolation:
    body = json_object(response)
    frames = body["frames"]
    return Interpolation(
        frames=[images.from_b64(frame["image"]) for frame in frames],
        embeddings=np.asarray([frame["embedding"] for frame in frames], dtype=np.float32),
        t=[float(frame["t"]) for frame in frames],
        method=str(body["method"]),
    )


def _is_ready(response: httpx.Response) -> bool:
    if response.status_code == 503:
        return False
    check(response)
    return True
