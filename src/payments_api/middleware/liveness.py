"""GET /health answered before routing (controllers/liveness.py says why and what).

Everything outside it still applies — the request id, the security headers, the access line,
the metrics — so the answer is the route's, without the router, the dependency resolution and
the response objects, which were most of its cost. A HEAD reaches here as a GET
(middleware/methods.py) and is answered the same, without the body."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

from payments_api.controllers.liveness import ROUTE_PATH, liveness_body
from payments_api.middleware.request_context import request_state

_CONTENT_TYPE = (b"content-type", b"application/json")


class LivenessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or scope["path"] != ROUTE_PATH or scope["method"] != "GET":
            return self.app(scope, receive, send)  # handed on: no frame of ours beneath
        return self._answer(scope, send)

    @staticmethod
    async def _answer(scope: Scope, send: Send) -> None:
        body = liveness_body(scope["app"].state.started_at)
        request_state(scope)["route_template"] = ROUTE_PATH
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_CONTENT_TYPE, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
