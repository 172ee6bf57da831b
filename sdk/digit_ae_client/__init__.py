"""The digit autoencoder service's SDK: a Python client and the `ae-client` command.

    from digit_ae_client import Client

    with Client("http://127.0.0.1:8000") as ae:
        z = ae.encode(["three.png", "eight.png"])       # (2, 64) float32
        digits = ae.decode(z)                           # two 28×28 PIL images
        path = ae.interpolate(z[0], "eight.png", steps=16, method="slerp")
        path.save_gif("three-to-eight.gif")

`AsyncClient` has the same verbs, awaited. Needs httpx, pillow and numpy only.
"""

from digit_ae_client._version import __version__
from digit_ae_client.aio import AsyncClient
from digit_ae_client.errors import (
    ApiError,
    BadRequest,
    ClientError,
    InvalidInput,
    NotAcceptable,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    Timeout,
    Unauthorized,
    Unreachable,
    UnsupportedMediaType,
    ValidationError,
)
from digit_ae_client.results import Interpolation, Reconstruction
from digit_ae_client.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Client",
    "ClientError",
    "Interpolation",
    "InvalidInput",
    "NotAcceptable",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "Reconstruction",
    "Timeout",
    "Unauthorized",
    "Unreachable",
    "UnsupportedMediaType",
    "ValidationError",
    "__version__",
]
