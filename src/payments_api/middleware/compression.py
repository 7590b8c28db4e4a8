"""gzip for responses of 1 KiB or more, unless the request carries `X-No-Compression`."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

MINIMUM_SIZE = 1024


class CompressionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=MINIMUM_SIZE)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http" and _wants_gzip(scope["headers"]):
            return self.gzip(scope, receive, send)
        return self.app(scope, receive, send)  # handed on: no frame of ours beneath


def _wants_gzip(headers: list[tuple[bytes, bytes]]) -> bool:
    """Accepts gzip and did not opt out (the gzip layer is skipped entirely otherwise)."""
    accepts = False
    for name, value in headers:
        if name == b"x-no-compression":
            return False
        if name == b"accept-encoding" and b"gzip" in value:
            accepts = True
    return accepts
