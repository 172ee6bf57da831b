"""The sans-IO core both clients share: settings, request descriptions, retry decisions.

A verb is a `Call`: what to send and how to read the answer. A client builds the request with
its own httpx client, sends it, and asks `Attempts` after each try whether to wait and try
again. The sync and async clients differ only in how they send and how they sleep.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

from digit_ae_client import errors
from digit_ae_client._version import __version__
from digit_ae_client.errors import ApiError, InvalidInput, Unreachable

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
USER_AGENT = f"digit-ae-client/{__version__}"

# Failures where the request may not have reached the model, or the connection broke; every
# verb is a pure function of its input, so sending it again is safe. A read timeout is not
# retried: the service is working on it, and asking again only adds to its queue.
RETRYABLE = (httpx.NetworkError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in count and in total time."""

    retries: int = 3  # tries after the first
    budget: float = 30.0  # seconds since the first try after which no new try starts
    base: float = 0.25  # the first backoff's ceiling; it doubles each retry
    cap: float = 8.0  # the largest backoff ceiling

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds before retry number `retry` (0-based): uniform in [0, min(cap, base·2^retry)]."""
        return rng.uniform(0.0, min(self.cap, self.base * 2**retry))


@dataclass(frozen=True)
class Config:
    """Where the service is and how to talk to it."""

    base_url: str
    api_key: str | None
    timeout: float
    retry: RetryPolicy

    @classmethod
    def resolve(
        cls,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        retries: int,
        retry_budget: float,
    ) -> Config:
        """Arguments first, then AE_URL / AE_API_KEY, then the defaults."""
        url = (base_url or os.environ.get("AE_URL") or DEFAULT_URL).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"base URL {url!r} must start with http:// or https://")
        if timeout <= 0 or retries < 0 or retry_budget < 0:
            raise InvalidInput("timeout must be positive, retries and retry budget not negative")
        key = api_key if api_key is not None else os.environ.get("AE_API_KEY")
        return cls(url, key or None, timeout, RetryPolicy(retries, retry_budget))

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


@dataclass(frozen=True)
class Call(Generic[T]):
    """One verb's request, and the function that reads its response."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    retry_on_503: bool = True

    def headers(self, request_id: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "X-Request-ID": request_id}
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    def read(self, response: httpx.Response) -> T:
        """The parsed answer; an error response raises its ApiError."""
        try:
            return self.parse(response)
        except (LookupError, TypeError, ValueError, OSError) as exc:
            detail = f"the body does not have the expected shape ({exc})"
            raise unexpected(response, detail) from exc


def new_request_id() -> str:
    return uuid.uuid4().hex


class Attempts:
    """One call's tries: after each, whether to wait and try again, or to stop."""

    def __init__(
        self,
        call: Call[Any],
        config: Config,
        request_id: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.call, self.config, self.request_id = call, config, request_id
        self.clock, self.rng = clock, rng or random.Random()
        self.started = clock()
        self.tries = 0

    def after_response(self, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again, or None: this response is the answer."""
        self.tries += 1
        if response.status_code != 503 or not self.call.retry_on_503:
            return None
        return self._delay(errors.retry_after(response))

    def after_error(self, exc: httpx.TransportError) -> float:
        """Seconds to wait before trying again; Unreachable once the retries are spent."""
        self.tries += 1
        delay = self._delay(None) if isinstance(exc, RETRYABLE) else None
        if delay is None:
            url = f"{self.config.base_url}{self.call.path}"
            message = describe(exc, self.config.base_url, self.config.timeout)
            if self.tries > 1:
                message += f" (after {self.tries} attempts)"
            raise Unreachable(
                message, url=url, request_id=self.request_id, attempts=self.tries
            ) from exc
        return delay

    def _delay(self, retry_after: float | None) -> float | None:
        """Backoff on top of what the service asked for, so clients refused together spread."""
        policy = self.config.retry
        if self.tries > policy.retries:
            return None
        delay = (retry_after or 0.0) + policy.backoff(self.tries - 1, self.rng)
        if self.clock() - self.started + delay > policy.budget:
            return None
        return delay


def describe(exc: httpx.TransportError, base_url: str, timeout: float) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"cannot connect to {base_url}: no answer within {timeout:g} s"
    if isinstance(exc, httpx.TimeoutException):
        return f"no response from {base_url} within {timeout:g} s"
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {base_url}: {reason}"
    return f"connection to {base_url} failed: {reason}"


def json_body(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, allow_nan=False, separators=(",", ":")).encode()


def check(response: httpx.Response) -> httpx.Response:
    """The response itself when it is a success; its typed ApiError otherwise."""
    if response.is_success:
        return response
    raise errors.from_response(response, sent_request_id(response))


def json_object(response: httpx.Response) -> dict[str, Any]:
    check(response)
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        kind = response.headers.get("content-type", "no content type")
        raise unexpected(response, f"expected a JSON object, got {kind}")
    return body


def unexpected(response: httpx.Response, detail: str) -> ApiError:
    """A success status with a body this client cannot read (another service at that URL?)."""
    request_id = response.headers.get("x-request-id") or sent_request_id(response)
    return ApiError(response.status_code, "Unexpected response", detail, request_id=request_id)


def sent_request_id(response: httpx.Response) -> str:
    return str(response.request.headers.get("x-request-id", ""))
