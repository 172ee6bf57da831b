"""The work routes, served straight from ASGI: the native verbs and OIP inference.

FastAPI declares them (their OpenAPI, their handlers) in `native/routes.py` and `oip/routes.py`,
and serves everything else. On the hot path its routing and per-route machinery cost more than
the verb itself: for a 28x28 digit, matching the route and entering the endpoint took twice the
event-loop time of decoding, batching and encoding it. This layer looks a POST path up in a dict
(the native verbs) or, for paths with parameters (`/v2/models/{model_name}/infer`), in the few
compiled patterns FastAPI made for them, and calls the same handler with the path parameters in
the scope; its errors get the same answers through `problems.error_response`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.fronts.problems import error_response

Handler = Callable[[Request], Awaitable[Response]]
Verb = tuple[APIRoute, Handler]


class VerbDispatch:
    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute]) -> None:
        self.app = app
        # POST routes whose endpoint takes the request alone (path parameters from the scope)
        posts = [r for r in routes if isinstance(r, APIRoute) and r.methods == {"POST"}]
        self.verbs: dict[str, Verb] = {
            r.path: (r, r.endpoint) for r in posts if not r.param_convertors
        }
        self.patterns: list[tuple[re.Pattern[str], Verb]] = [
            (r.path_regex, (r, r.endpoint)) for r in posts if r.param_convertors
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        verb = None
        if scope["type"] == "http" and scope["method"] == "POST":
            verb = self.verbs.get(scope["path"]) or self._match(scope)
        if verb is None:
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

    def _match(self, scope: Scope) -> Verb | None:
        """A route with path parameters; they go where Starlette's routing would put them."""
        for pattern, verb in self.patterns:
            match = pattern.match(scope["path"])
            if match:
                scope["path_params"] = match.groupdict()
                return verb
        return None
