"""The service's exceptions: plain Python, raised by the core, the codecs and the fronts alike.
`service.fronts.problems` is the one place that turns any exception into an HTTP answer.

    ServiceError                      (status, slug, title)
    ├── BadRequest              400   bad-png, bad-base64, bad-json, bad-multipart, bad-http;
    │                                 OIP's bad-inference-request, bad-tensor
    ├── Unauthorized            401   missing or unknown API key
    ├── NotFound                404   no such model file under the models folder;
    │                                 unknown-model: no such OIP model or version
    ├── NotAcceptable           406   nothing we can produce matches Accept / format
    ├── BodyTimeout             408   the client stopped sending its body
    ├── PayloadTooLarge         413   body-too-large, image-too-large
    ├── UnsupportedMediaType    415
    ├── ValidationFailed        422   with a list of (field, message)
    ├── ModelRejected           422   a model file that fails validation on reload
    ├── HeadTooLarge            431   request line and headers over AE_MAX_HEAD_BYTES
    ├── Overloaded              503   queue full (Retry-After)
    ├── NotReady                503   starting, reloading or shutting down (Retry-After)
    └── TimedOut                504   waited longer than AE_REQUEST_TIMEOUT

Messages say what was wrong and with which value; nothing from a traceback, a file path or
torch ever reaches a client. `body()` is the problem document's fields (RFC 9457).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PROBLEM_TYPE = "urn:digit-ae:problem:{}"


class ServiceError(Exception):
    status = 500
    slug = "internal"
    title = "Internal server error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "type": PROBLEM_TYPE.format(self.slug),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }


class BadRequest(ServiceError):
    status, slug, title = 400, "bad-request", "Bad request"


class InvalidImage(BadRequest):
    slug, title = "bad-png", "Not a readable PNG image"


class InvalidBase64(BadRequest):
    slug, title = "bad-base64", "Not valid base64"


class InvalidJSON(BadRequest):
    slug, title = "bad-json", "Not valid JSON"


class InvalidMultipart(BadRequest):
    slug, title = "bad-multipart", "Not a usable multipart body"


class InvalidInferenceRequest(BadRequest):
    """An Open Inference Protocol request that is not a usable inference request object."""

    slug, title = "bad-inference-request", "Not a usable inference request"


class InvalidTensor(BadRequest):
    """An OIP input or requested output at fault; the message names the tensor."""

    slug, title = "bad-tensor", "Invalid tensor"


class MalformedHTTP(BadRequest):
    """Refused by the HTTP parser, before any route sees the request (connections.py)."""

    slug, title = "bad-http", "Not a valid HTTP/1.1 request"


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "Missing or unknown API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="digit-ae"'})


class NotFound(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class UnknownModel(NotFound):
    slug, title = "unknown-model", "No such model or version"


class NotAcceptable(ServiceError):
    status, slug, title = 406, "not-acceptable", "Cannot produce an acceptable response"


class BodyTimeout(ServiceError):
    status, slug, title = 408, "body-timeout", "Request body not received in time"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Connection": "close"})


class PayloadTooLarge(ServiceError):
    status, slug, title = 413, "body-too-large", "Request body too large"


class ImageTooLarge(PayloadTooLarge):
    slug, title = "image-too-large", "Image too large"


class UnsupportedMediaType(ServiceError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(ServiceError):
    status, slug, title = 422, "invalid-request", "Invalid request"

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.errors))

    def body(self) -> dict[str, Any]:
        fields = [{"field": field, "message": message} for field, message in self.errors]
        return {**super().body(), "errors": fields}


class ModelRejected(ServiceError):
    status, slug, title = 422, "model-rejected", "Model file rejected"


class HeadTooLarge(ServiceError):
    """Refused while the head is still arriving, before any route sees it (connections.py)."""

    status, slug, title = 431, "head-too-large", "Request Header Fields Too Large"


class Overloaded(ServiceError):
    status, slug, title = 503, "overloaded", "Service overloaded"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class NotReady(Overloaded):
    slug, title = "not-ready", "Service not ready"


class TimedOut(ServiceError):
    status, slug, title = 504, "timeout", "Request timed out"
