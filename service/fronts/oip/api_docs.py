"""OpenAPI for the OIP routes: path parameters, the inference request (JSON, or JSON and binary
tensors), and errors as the protocol's JSON error object."""

from __future__ import annotations

from typing import Any

from service.fronts.oip.schemas import InferenceError, InferenceRequest, InferenceResponse

TAG = "Open Inference Protocol"
EXAMPLE_MODEL = "mnist-ae"  # the committed artifact's name
_BINARY = {"type": "string", "format": "binary"}
_ERROR = {"content": {"application/json": {"schema": InferenceError.model_json_schema()}}}
_REASONS = {
    400: "The request, a tensor or a parameter is not usable; `error` says which and why",
    401: "API key missing or unknown (when keys are configured)",
    404: "No such model, or not this version",
    408: "The request body stopped arriving",
    413: "Body or image larger than the limits",
    415: "A compressed body (Content-Encoding) is not accepted",
    503: "Not ready, or overloaded; see Retry-After",
    504: "The model did not answer within AE_REQUEST_TIMEOUT",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {**_ERROR, "description": _REASONS[status]} for status in statuses}


def _path(name: str, description: str, example: str | None = None) -> dict[str, Any]:
    parameter = {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }
    return {**parameter, "example": example} if example else parameter


MODEL_NAME = _path(
    "model_name",
    "`<artifact>` (reconstruct), `<artifact>-encoder`, `-decoder` or `-interpolator`",
    EXAMPLE_MODEL,
)
MODEL_VERSION = _path("model_version", "the artifact's version; any other is a 404")
HEADER_LENGTH = {
    "name": "Inference-Header-Content-Length",
    "in": "header",
    "required": False,
    "description": "binary tensor data: the length of the JSON object that starts the body "
    "(0: the body is the one input's tensor, a batch of one)",
    "schema": {"type": "integer", "minimum": 0},
}
EXAMPLE_REQUEST = {
    "inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 28, 28], "data": [0] * 784}],
    "outputs": [{"name": "mse"}],
}


def infer(versioned: bool) -> dict[str, Any]:
    """The route's `openapi_extra` and `responses`; the example goes on the unversioned one."""
    json_body: dict[str, Any] = {"schema": InferenceRequest.model_json_schema()}
    if not versioned:
        json_body["example"] = EXAMPLE_REQUEST
    parameters = [MODEL_NAME, MODEL_VERSION] if versioned else [MODEL_NAME]
    return {
        "openapi_extra": {
            "parameters": [*parameters, HEADER_LENGTH],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": json_body,
                    "application/octet-stream": {"schema": _BINARY},
                },
            },
        },
        "responses": {
            200: {
                "model": InferenceResponse,
                "description": "The outputs; with binary ones, the JSON object then their bytes "
                "(application/octet-stream, Inference-Header-Content-Length)",
                "content": {"application/octet-stream": {"schema": _BINARY}},
            },
            **errors(400, 401, 404, 408, 413, 415, 503, 504),
        },
    }
