"""The one place that turns any exception into an HTTP answer: problem+json (RFC 9457) with the
request's id, the same for every front and every layer.

On the Open Inference Protocol's paths (`/v2/...`) the same fields come as `application/json`
with the protocol's `error` member first: its clients read the message from `error`, and
KServe's only from a body of exactly that media type. Operators keep type, status and request id.

Nothing from a traceback, a file path or torch ever reaches a client. A client that hangs up
before its body arrived is no error of ours: it is logged quietly and counted as 499 (nginx's
"client closed request").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Scope

from service.errors import PROBLEM_TYPE, ServiceError, ValidationFailed
from service.fronts.paths import is_oip

log = logging.getLogger("service")

PROBLEM_MEDIA_TYPE = "application/problem+json"
OIP_ERROR_MEDIA_TYPE = "application/json"
CLIENT_CLOSED = 499  # never sent (nobody is listening); what the metrics count


def problem_response(
    status: int,
    body: dict[str, Any],
    request_id: str,
    headers: dict[str, str] | None = None,
    *,
    path: str = "",
) -> Response:
    """The answer to an error on `path`: problem+json, or OIP's error object on `/v2` paths."""
    if is_oip(path):
        content = orjson.dumps({"error": body["detail"], **body, "request_id": request_id})
        return Response(content, status, headers=headers, media_type=OIP_ERROR_MEDIA_TYPE)
    return Response(
        problem_json(body, request_id), status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


def problem_json(body: dict[str, Any], request_id: str) -> bytes:
    """The problem document: a `ServiceError.body()` and the request's id."""
    return orjson.dumps({**body, "request_id": request_id})


def scope_problem(
    scope: Scope, exc: ServiceError, headers: dict[str, str] | None = None
) -> Response:
    """`exc` answered for the request in `scope`, by the ASGI layers outside FastAPI; `headers`
    replace the exception's own."""
    return problem_response(
        exc.status,
        exc.body(),
        str(scope.get("request_id", "")),
        exc.headers if headers is None else headers,
        path=scope.get("path", ""),
    )


def _request_id(request: Request) -> str:
    return str(request.scope.get("request_id", ""))


def _path(request: Request) -> str:
    return str(request.scope.get("path", ""))


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return problem_response(
        exc.status, exc.body(), _request_id(request), exc.headers, path=_path(request)
    )


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
    return problem_response(
        exc.status_code, body, _request_id(request), headers, path=_path(request)
    )


async def _client_gone(request: Request, exc: Exception) -> Response:
    log.debug("client closed %s %s before sending its body", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    body = ServiceError("The service failed to handle this request; it has been logged.").body()
    return problem_response(500, body, _request_id(request), path=_path(request))


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
