"""The four verbs, served straight from ASGI.

FastAPI declares the verbs (their OpenAPI, their handlers) in `native/routes.py`, and serves
everything else. On the hot path its routing and per-route machinery cost more than the verb
itself: for a 28x28 digit, matching the route and entering the endpoint took twice the event-loop
time of decoding, batching and encoding it. This layer looks the path up in a dict and calls the
same handler; its errors get the same problem+json through `problems.error_response`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.fronts.problems import error_response

Handler = Callable[[Request], Awaitable[Response]]


class VerbDispatch:
    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute]) -> None:
        self.app = app
        # POST routes whose endpoint takes the request alone: path -> (route, handler)
        self.verbs: dict[str, tuple[APIRoute, Handler]] = {
            route.path: (route, route.endpoint)
            for route in routes
            if isinstance(route, APIRoute) and route.methods == {"POST"}
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        verb = self.verbs.get(scope["path"]) if scope["type"] == "http" else None
        if verb is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        route, handler = verb
        scope["route"] = route  # metrics label requests by route, as FastAPI would
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            response = await error_response(request, exc)
        await response(scope, receive, send)
