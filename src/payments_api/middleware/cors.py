"""CORS for the origins in `ALLOWED_ORIGINS`: the origin echoed with credentials allowed; any
other origin gets no `Access-Control-Allow-Origin` (and a 403 on preflight)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payments_api.errors import ForbiddenError
from payments_api.middleware.errors import send_error

ALLOWED_METHODS = b"GET, POST, PUT, DELETE, PATCH"
ALLOWED_HEADERS = b"Content-Type, Authorization, X-Requested-With, Idempotency-Key"
EXPOSED_HEADERS = (
    b"X-Request-ID, Retry-After, Idempotent-Replayed, "
    b"RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
PREFLIGHT_MAX_AGE = b"600"


class CORSMiddleware:
    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        self.app = app
        self.allowed = frozenset(origin.rstrip("/").encode("latin-1") for origin in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = b""
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = scope["method"] == "OPTIONS"
        if not origin:
            await self.app(scope, receive, send)
            return
        allowed = origin in self.allowed
        if preflight:
            await self._preflight(scope, send, origin, allowed)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"vary", b"Origin")]
                if allowed:
                    headers += [
                        (b"access-control-allow-origin", origin),
                        (b"access-control-allow-credentials", b"true"),
                        (b"access-control-expose-headers", EXPOSED_HEADERS),
                    ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _preflight(scope: Scope, send: Send, origin: bytes, allowed: bool) -> None:
        if not allowed:
            await send_error(
                scope,
                send,
                ForbiddenError(message="This origin is not allowed"),
                headers=[(b"vary", b"Origin")],
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [
                    (b"access-control-allow-origin", origin),
                    (b"access-control-allow-credentials", b"true"),
                    (b"access-control-allow-methods", ALLOWED_METHODS),
                    (b"access-control-allow-headers", ALLOWED_HEADERS),
                    (b"access-control-max-age", PREFLIGHT_MAX_AGE),
                    (b"vary", b"Origin"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
