"""CORS for the origins in `ALLOWED_ORIGINS`: the origin echoed with credentials allowed; any
other origin gets no `Access-Control-Allow-Origin` (and a 403 on preflight). The edge asks this
policy what to add to an answer and lets it answer a preflight."""

from __future__ import annotations

from starlette.types import Scope, Send

from payments_api.errors import ForbiddenError
from payments_api.middleware.errors import send_error

Headers = list[tuple[bytes, bytes]]

ALLOWED_METHODS = b"GET, POST, PUT, DELETE, PATCH"
ALLOWED_HEADERS = b"Content-Type, Authorization, X-Requested-With, Idempotency-Key"
EXPOSED_HEADERS = (
    b"X-Request-ID, Retry-After, Idempotent-Replayed, "
    b"RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)
PREFLIGHT_MAX_AGE = b"600"
_VARY = (b"vary", b"Origin")
_OTHER_ORIGIN: Headers = [_VARY]


class CorsPolicy:
    def __init__(self, allowed_origins: list[str]) -> None:
        self.allowed = frozenset(origin.rstrip("/").encode("latin-1") for origin in allowed_origins)

    def headers_for(self, origin: bytes) -> Headers:
        """What an answer to a request from `origin` (not a preflight) carries."""
        if origin not in self.allowed:
            return _OTHER_ORIGIN
        return [
            _VARY,
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", EXPOSED_HEADERS),
        ]

    async def preflight(self, scope: Scope, send: Send, origin: bytes) -> None:
        if origin not in self.allowed:
            await send_error(
                scope, send, ForbiddenError(message="This origin is not allowed"), headers=[_VARY]
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
                    _VARY,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
