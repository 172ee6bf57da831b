"""The client's exceptions: every refusal the service answers, and the failures before it.

    ClientError                          anything this package raises on purpose
    ├── InvalidInput                     (also a ValueError) an image or embedding that cannot
    │                                    be sent: unknown type, bad shape, values out of range
    ├── Unreachable                      no answer: connection refused, reset or timed out,
    │                                    after the retries
    └── ApiError                         the service answered with an error (problem+json)
        ├── BadRequest             400   bad PNG, bad base64, bad JSON, bad multipart
        ├── Unauthorized           401   missing or unknown API key
        ├── NotFound               404   no such path (a wrong base URL?)
        ├── NotAcceptable          406   the asked format is not offered
        ├── PayloadTooLarge        413   body or image side over the service's limits
        ├── UnsupportedMediaType   415
        ├── ValidationError        422   `errors` lists each field at fault
        ├── Overloaded             503   queue full or not ready, still so after the retries
        └── Timeout                504   the service gave up waiting for the model

Every ApiError carries `status`, `title`, `detail`, `type`, `request_id` (quote it to the
service's operators: their logs carry the same id), `errors` and `retry_after`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

PROBLEM_TYPES = ("application/problem+json", "application/json")


class ClientError(Exception):
    """Base of every exception this package raises on purpose."""


class InvalidInput(ClientError, ValueError):
    """An input that cannot become a request (checked before anything is sent)."""


class Unreachable(ClientError):
    """Nothing answered: connection refused or reset, or no response within the timeout."""

    def __init__(self, message: str, *, url: str, request_id: str, attempts: int) -> None:
        super().__init__(message)
        self.url = url
        self.request_id = request_id
        self.attempts = attempts


class ApiError(ClientError):
    """The service refused the request; its problem details are the attributes."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        type: str = "about:blank",
        request_id: str = "",
        errors: list[dict[str, str]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, title, detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type
        self.request_id = request_id
        self.errors = errors or []
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = f"{self.status} {self.title}: {self.detail}"
        return f"{text} (request id {self.request_id})" if self.request_id else text


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class NotFound(ApiError):
    pass


class NotAcceptable(ApiError):
    pass


class PayloadTooLarge(ApiError):
    pass


class UnsupportedMediaType(ApiError):
    pass


class ValidationError(ApiError):
    pass


class Overloaded(ApiError):
    pass


class Timeout(ApiError):
    pass


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    406: NotAcceptable,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
    503: Overloaded,
    504: Timeout,
}


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (the service sends seconds; a date is not worth honouring)."""
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


def from_response(response: httpx.Response, request_id: str) -> ApiError:
    """The typed exception for an error response, problem+json or not (a proxy's HTML page)."""
    problem = _problem(response)
    status = response.status_code
    cls = _BY_STATUS.get(status, ApiError)
    return cls(
        status,
        str(problem.get("title") or response.reason_phrase or "Error"),
        str(problem.get("detail") or _snippet(response)),
        type=str(problem.get("type") or "about:blank"),
        request_id=str(
            problem.get("request_id") or response.headers.get("x-request-id") or request_id
        ),
        errors=_field_errors(problem.get("errors")),
        retry_after=retry_after(response),
    )


def _problem(response: httpx.Response) -> dict[str, Any]:
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in PROBLEM_TYPES:
        return {}
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())[:200]
    return text or f"HTTP {response.status_code} with an empty body"


def _field_errors(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list):
        return []
    return [{str(k): str(v) for k, v in item.items()} for item in value if isinstance(item, dict)]
