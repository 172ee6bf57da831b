"""The service's exceptions, and the one place that turns any exception into problem+json.

    ServiceError                      (status, slug, title)
    ├── BadRequest              400   bad-png, bad-base64, bad-json, bad-multipart, bad-http
    ├── Unauthorized            401   missing or unknown API key
    ├── NotFound                404   no such model file under the models folder
    ├── NotAcceptable           406   nothing we can produce matches Accept / format
    ├── BodyTimeout             408   the client stopped sending its body
    ├── PayloadTooLarge         413   body-too-large, image-too-large
    ├── UnsupportedMediaType    415
    ├── ValidationFailed        422   with a list of (field, message)
    ├── ModelRejected           422   a model file that fails validation on reload
    ├── Overloaded              503   queue full (Retry-After)
    ├── NotReady                503   starting, reloading or shutting down (Retry-After)
    └── TimedOut                504   waited longer than AE_REQUEST_TIMEOUT

Messages say what was wrong and with which value; nothing from a traceback, a file path or
torch ever reaches a client. A client that hangs up before its body arrived is no error of
ours: it is logged quietly and counted as 499 (nginx's "client closed request").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

log = logging.getLogger("service")

PROBLEM_TYPE = "urn:digit-ae:problem:{}"
PROBLEM_MEDIA_TYPE = "application/problem+json"
CLIENT_CLOSED = 499  # never sent (nobody is listening); what the metrics count


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


class MalformedHTTP(BadRequest):
    """Refused by the HTTP parser, before any route sees the request (connections.py)."""

    slug, title = "bad-http", "Not a valid HTTP/1.1 request"


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "Missing or unknown API key"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="digit-ae"'})


class NotFound(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


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


class Overloaded(ServiceError):
    status, slug, title = 503, "overloaded", "Service overloaded"

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class NotReady(Overloaded):
    slug, title = "not-ready", "Service not ready"


class TimedOut(ServiceError):
    status, slug, title = 504, "timeout", "Request timed out"


def problem_response(
    status: int, body: dict[str, Any], request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        problem_json(body, request_id), status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def problem_json(body: dict[str, Any], request_id: str) -> bytes:
    """The problem document: a `ServiceError.body()` and the request's id."""
    return orjson.dumps({**body, "request_id": request_id})


def _request_id(request: Request) -> str:
    return str(request.scope.get("request_id", ""))


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return problem_response(exc.status, exc.body(), _request_id(request), exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [(".".join(str(part) for part in err["loc"]), str(err["msg"])) for err in exc.errors()]
    return await _service_error(request, ValidationFailed(errors))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    body = {
        "type": PROBLEM_TYPE.format(f"http-{exc.status_code}"),
        "title": _HTTP_TITLES.get(exc.status_code, "Request refused"),
        "status": exc.status_code,
        "detail": str(exc.detail),
    }
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, body, _request_id(request), headers)


async def _client_gone(request: Request, exc: Exception) -> Response:
    log.debug("client closed %s %s before sending its body", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    body = ServiceError("The service failed to handle this request; it has been logged.").body()
    return problem_response(500, body, _request_id(request))


_HTTP_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    413: "Request body too large",
}


_HANDLERS: tuple[
    tuple[type[Exception], Callable[[Request, Exception], Awaitable[Response]]], ...
] = (
    (ServiceError, _service_error),
    (RequestValidationError, _validation_error),
    (StarletteHTTPException, _http_error),
    (ClientDisconnect, _client_gone),
    (Exception, _unexpected_error),
)


def install_error_handlers(app: FastAPI) -> None:
    for kind, handler in _HANDLERS:
        app.add_exception_handler(kind, handler)


async def error_response(request: Request, exc: Exception) -> Response:
    """The same answer the installed handlers give, for code that runs outside FastAPI's."""
    for kind, handler in _HANDLERS:
        if isinstance(exc, kind):
            return await handler(request, exc)
    raise exc  # not an Exception: cancellation and the like propagate
