"""gzip for responses of 1 KiB or more, unless the request carries `X-No-Compression`."""

from __future__ import annotations

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

MINIMUM_SIZE = 1024


class CompressionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=MINIMUM_SIZE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _wants_gzip(scope["headers"]):
            await self.gzip(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _wants_gzip(headers: list[tuple[bytes, bytes]]) -> bool:
    """Accepts gzip and did not opt out (the gzip layer is skipped entirely otherwise)."""
    accepts = False
    for name, value in headers:
        if name == b"x-no-compression":
            return False
        if name == b"accept-encoding" and b"gzip" in value:
            accepts = True
    return accepts
