"""API keys, as plain ASGI: added to the app only when `AE_API_KEYS` is set.

The paths that do work (`paths.does_work`: the four verbs, OIP inference and `/admin/*`) need a
key, sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`; probes, `/model`, `/metrics`,
the docs, the page and OIP's health and metadata stay open so that orchestrators and people can
look without one. Keys are compared as SHA-256 digests (equal
lengths) in constant time, against every configured key, so the answer's timing tells nothing
about how close a guess was, nor how long a key is.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import Unauthorized
from service.fronts.paths import does_work
from service.fronts.problems import scope_problem

__all__ = ["APIKeys", "does_work", "presented_key"]  # does_work: for the readiness gate


def presented_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The key from `X-API-Key`, or from `Authorization: Bearer` (scheme in any case)."""
    for name, value in headers:
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
    return None


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


class APIKeys:
    def __init__(self, app: ASGIApp, *, keys: list[str]) -> None:
        if not keys:
            raise ValueError("APIKeys needs at least one key")
        self.app = app
        self._digests = [_digest(key.encode()) for key in keys]

    def accepts(self, presented: bytes) -> bool:
        digest, matched = _digest(presented), False
        for known in self._digests:  # no early exit: every key is compared every time
            matched |= hmac.compare_digest(digest, known)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not does_work(scope["path"]):
            await self.app(scope, receive, send)
            return
        presented = presented_key(scope["headers"])
        if presented is not None and self.accepts(presented):
            await self.app(scope, receive, send)
            return
        exc = Unauthorized(
            "this endpoint needs an API key: send `Authorization: Bearer <key>` "
            "or `X-API-Key: <key>`"
            if presented is None
            else "the API key is not valid"
        )
        await scope_problem(scope, exc)(scope, receive, send)
