"""Request headers as RFC 9110 reads them, settled once for everything after this middleware.

- A field value is compared without the optional whitespace (spaces and tabs) around it, so
  `Idempotency-Key: "k  "` and `"k"` are one key. The servers differ (h11 trims, httptools
  keeps trailing whitespace, an ASGI test transport keeps both), so the values are trimmed
  here, before any middleware, dependency or route after this one reads a header: no call
  site has to remember. (`RequestContextMiddleware`, which runs first, trims the one header
  it reads.)
- More than MAX_HEADER_COUNT fields, or more than MAX_HEADER_BYTES in all (each field counted
  as its `name: value` line with its CRLF), is a 431 HEADERS_TOO_LARGE. The server refuses a
  request head far past that before reading it in full (`server.py`); this is the exact rule.

Cost per request: one pass over the header list — two `len()` and one `bytes.strip()` per
field (which returns the very same object when there is nothing to trim) — and a new list
only for a request that had whitespace to trim.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from payments_api.config.constants import HEADER_WHITESPACE, MAX_HEADER_BYTES, MAX_HEADER_COUNT
from payments_api.errors import HeadersTooLarge
from payments_api.middleware.errors import send_error
from payments_api.utils.logger import log_security_event

LINE_OVERHEAD = len(b": \r\n")
"""What a field's line adds to its name and value."""


class RequestHeadersMiddleware:
    def __init__(
        self, app: ASGIApp, max_count: int = MAX_HEADER_COUNT, max_bytes: int = MAX_HEADER_BYTES
    ) -> None:
        self.app = app
        self.max_count = max_count
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        count = len(headers)
        if count > self.max_count:
            await self._refuse(scope, send, count, None)
            return
        size = count * LINE_OVERHEAD
        trimmed: list[tuple[bytes, bytes]] | None = None
        for index, (name, value) in enumerate(headers):
            size += len(name) + len(value)
            bare = value.strip(HEADER_WHITESPACE)
            if bare is not value:
                if trimmed is None:
                    trimmed = list(headers)
                trimmed[index] = (name, bare)
        if size > self.max_bytes:
            await self._refuse(scope, send, count, size)
            return
        if trimmed is not None:
            scope["headers"] = trimmed
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, count: int, size: int | None) -> None:
        log_security_event(
            "request headers too large", headerCount=count, headerBytes=size, path=scope["path"]
        )
        limits = f"{self.max_count} fields and {self.max_bytes} bytes in all"
        await send_error(
            scope, send, HeadersTooLarge(message=f"Request headers are limited to {limits}")
        )
