"""Methods (RFC 9110 §9): HEAD answered on every GET route, and the `Allow` of a 405.

HEAD is GET without the body. Rather than declaring it on every route (and in the OpenAPI
description, where it would double every GET operation), `HeadAsGetMiddleware` hands what is
inside it a GET and drops the body of the answer: the status and headers are the GET's, the
cached-read fast path and the rate limiter treat a HEAD as the GET it stands for, and nothing
after this middleware has to know. The server and the access log, outside it, still see HEAD.

Cost: one string comparison per request that is not a HEAD.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any

import fastapi.routing
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# FastAPI 0.137+ keeps an included router as one entry of `app.routes`; this walks into it
# (resolving its prefix). Before that, `app.routes` held every route itself.
_route_contexts: Any = getattr(fastapi.routing, "iter_route_contexts", iter)


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            return self.app(scope, receive, send)  # handed on: no frame of ours beneath
        return self._as_get(scope, receive, send)

    async def _as_get(self, scope: Scope, receive: Receive, send: Send) -> None:
        as_get = {**scope, "method": "GET"}  # the state dict is shared, not copied

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(as_get, receive, without_body)
        finally:
            if "route" in as_get:  # the matched route, which names the request in /metrics
                scope["route"] = as_get["route"]


def allowed_methods(routes: Iterable[Any], path: str) -> list[str]:
    """Every method of the route at `path` (HEAD wherever GET is), for a 405's `Allow`.
    Starlette names only the methods of the first route whose path matched; the route is
    that one's path template, which other routes may share with other methods. A template
    that merely also matches (`/users/{userId}` for `/users/me`) is another route."""
    template: str | None = None
    methods: set[str] = set()
    for route in _route_contexts(routes):
        regex = getattr(route, "path_regex", None)
        route_methods = getattr(route, "methods", None)
        if regex is None or not route_methods or not regex.match(path):
            continue
        if template is None:
            template = route.path
        if route.path == template:
            methods.update(route_methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)
