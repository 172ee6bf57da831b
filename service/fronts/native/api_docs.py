"""OpenAPI for what FastAPI cannot infer: bodies that may be PNG, multipart or JSON, and
responses that may be PNG, GIF or JSON. Each verb gets a request and a response example."""

from __future__ import annotations

from typing import Any

from service.fronts.native.query import documented
from service.fronts.native.schemas import (
    EmbeddingsRequest,
    EncodeResponse,
    ImagesResponse,
    InterpolateRequest,
    InterpolateResponse,
    Problem,
    ReconstructResponse,
)

# A real MNIST "7", 28x28 8-bit grey.
EXAMPLE_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAA0ElEQVR4nGNgGLaguHLR379XscnYZ6/6/QcIfl1Dk5A"
    "88OjRxz9/T4Ek/zxElXO5DxZVF1Z3fPDnz3ZUyV1Ama85pkDWtD9/7oigyLl9+vPnnjWYuenPn15UjTv//DnkDGII"
    "Rn2AshAg+Ow+CTCj8s+fixI4vOn7/c+PLBxyDH///EnDJdf2/+9fdRxybNv//slmwi7Hlfbn72IB7HK8K/78ycOhj0H"
    "zz5+buByjMfvPNXlckkv//MHpQ+3Nf6bh8gVD55+7OOUYnP/445TDCgAqumLR3fKZxAAAAABJRU5ErkJggg=="
)
EXAMPLE_EMBEDDING = [round(0.5 * ((i * 37) % 11 - 5), 2) for i in range(64)]

API_DESCRIPTION = """
A convolutional autoencoder of handwritten digits: a 28x28 digit becomes 64 numbers and back.

Images go in as a raw `image/png` body, as `multipart/form-data` files, or as base64 strings in
JSON. Any PNG works: dark ink on a light background is inverted automatically, and an image of
any size is fitted to 28x28 the way MNIST was made. Every error is `application/problem+json`.
"""

_BINARY = {"type": "string", "format": "binary"}
_PNG = {"schema": _BINARY, "example": "(PNG bytes)"}
# Errors are documented under the media type they are sent with, so a client (or a schema
# checker) can validate them; `model=` would file them under application/json instead.
_PROBLEM = {"content": {"application/problem+json": {"schema": Problem.model_json_schema()}}}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {**_PROBLEM, "description": _REASONS[status]} for status in statuses}


_REASONS = {
    400: "Unreadable PNG, base64, JSON or multipart",
    401: "API key missing or unknown (when keys are configured)",
    406: "Nothing acceptable to produce for this Accept / format",
    408: "The request body stopped arriving",
    413: "Body or image larger than the limits",
    415: "Unsupported Content-Type",
    422: "A field is invalid; `errors` names each",
    503: "Overloaded or not ready; see Retry-After",
    504: "The model did not answer within AE_REQUEST_TIMEOUT",
}
COMMON_PROBLEMS = (400, 401, 406, 408, 413, 415, 422, 503, 504)


def _schema(model: Any) -> dict[str, Any]:
    return dict(model.model_json_schema())


def image_body(multi_name: str = "files") -> dict[str, Any]:
    multipart = {
        "type": "object",
        "properties": {multi_name: {"type": "array", "items": _BINARY}},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "image/png": _PNG,
                "multipart/form-data": {"schema": multipart},
                "application/json": {
                    "schema": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "image": {"type": "string", "description": "base64 PNG"},
                            "images": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "example": {"image": EXAMPLE_PNG},
                },
            },
        }
    }


def json_body(model: Any, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _schema(model), "example": example}},
        }
    }


ENCODE = {
    "openapi_extra": {**image_body(), "parameters": documented("invert", "fit", "format")},
    "responses": {
        200: {"model": EncodeResponse, "description": "One embedding per image, in order"},
        **problems(*COMMON_PROBLEMS),
    },
}

DECODE = {
    "openapi_extra": {
        **json_body(EmbeddingsRequest, {"embedding": EXAMPLE_EMBEDDING}),
        "parameters": documented("format"),
    },
    "responses": {
        200: {
            "model": ImagesResponse,
            "description": "One embedding: a 28x28 PNG (default). Several, or asked: JSON.",
            "content": {"image/png": _PNG},
        },
        **problems(*COMMON_PROBLEMS),
    },
}

RECONSTRUCT = {
    "openapi_extra": {**image_body(), "parameters": documented("invert", "fit", "format")},
    "responses": {
        200: {
            "model": ReconstructResponse,
            "description": "One image: its redrawing as PNG (default), with X-Reconstruction-MSE."
            " Several, or asked: JSON with each image's MSE.",
            "content": {"image/png": _PNG},
        },
        **problems(*COMMON_PROBLEMS),
    },
}

INTERPOLATE = {
    "openapi_extra": {
        "parameters": documented("invert", "fit", "format", "steps", "method"),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _schema(InterpolateRequest),
                    "example": {"start": EXAMPLE_PNG, "end": EXAMPLE_EMBEDDING, "steps": 8},
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["start", "end"],
                        "properties": {
                            "start": _BINARY,
                            "end": _BINARY,
                            "steps": {"type": "integer"},
                            "method": {"type": "string", "enum": ["linear", "slerp"]},
                        },
                    }
                },
            },
        },
    },
    "responses": {
        200: {
            "model": InterpolateResponse,
            "description": "Frames as JSON (default), an animated GIF, or one PNG strip.",
            "content": {"image/gif": {"schema": _BINARY}, "image/png": _PNG},
        },
        **problems(*COMMON_PROBLEMS),
    },
}
