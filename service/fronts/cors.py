"""CORS for the origins in `AE_CORS_ORIGINS` only (none by default: no CORS headers at all).

Starlette's middleware does the work; a refused preflight is answered as problem+json like
every other error, instead of Starlette's plain text.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import BadRequest
from service.fronts.problems import scope_problem

ALLOW_HEADERS = (
    "Authorization", "X-API-Key", "X-Request-ID", "Content-Type", "Accept",
    "Inference-Header-Content-Length",  # OIP's binary tensors
)  # fmt: skip
_BODY_HEADERS = ("content-length", "content-type")
EXPOSE_HEADERS = (
    "X-Request-ID", "X-Model-Version", "X-Reconstruction-MSE", "Retry-After",
    "Inference-Header-Content-Length",
)  # fmt: skip


class CorsAllowList(CORSMiddleware):
    def __init__(self, app: ASGIApp, *, origins: list[str]) -> None:
        super().__init__(
            app,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=list(ALLOW_HEADERS),
            expose_headers=list(EXPOSE_HEADERS),
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if (
            headers is None
            or scope["method"] != "OPTIONS"
            or "origin" not in headers
            or "access-control-request-method" not in headers
        ):
            await super().__call__(scope, receive, send)
            return
        response = self.preflight_response(request_headers=headers)
        if response.status_code >= 400:
            reason = bytes(response.body).decode(errors="replace")  # "Disallowed CORS origin"
            exc = BadRequest(f"{reason} (allowed origins: AE_CORS_ORIGINS)")
            kept = {k: v for k, v in response.headers.items() if k not in _BODY_HEADERS}
            response = scope_problem(scope, exc, kept)
        await response(scope, receive, send)
