"""Request headers as RFC 9110 reads them, settled once for everything after this middleware.

A field value is compared without the optional whitespace (spaces and tabs) around it, so
`Idempotency-Key: "k  "` and `"k"` are one key. The servers differ (h11 trims, httptools keeps
trailing whitespace, an ASGI test transport keeps both), so the values are trimmed here, before
any middleware, dependency or route after this one reads a header: no call site has to
remember. (`RequestContextMiddleware`, which runs first, trims the one header it reads.)

Cost per request: one pass over the header list — one `bytes.strip()` per field, which returns
the very same object when there is nothing to trim — and a new list only for a request that
had whitespace to trim.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from payments_api.config.constants import HEADER_WHITESPACE


class RequestHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        trimmed: list[tuple[bytes, bytes]] | None = None
        for index, (name, value) in enumerate(headers):
            bare = value.strip(HEADER_WHITESPACE)
            if bare is not value:
                if trimmed is None:
                    trimmed = list(headers)
                trimmed[index] = (name, bare)
        if trimmed is not None:
            scope["headers"] = trimmed
        await self.app(scope, receive, send)
