"""Helmet's defaults for an API, added to every response; the docs page alone gets a CSP
that lets Swagger UI load its script and styles."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = (
    "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; img-src 'self' data: https:; "
    "object-src 'none'; script-src 'self'; script-src-attr 'none'; "
    "style-src 'self' 'unsafe-inline'; upgrade-insecure-requests"
)
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https:; object-src 'none'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

_COMMON: list[tuple[bytes, bytes]] = [
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains; preload"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-dns-prefetch-control", b"off"),
    (b"x-permitted-cross-domain-policies", b"none"),
]
API_HEADERS = [*_COMMON, (b"content-security-policy", API_CSP.encode())]
_DOCS_HEADERS = [*_COMMON, (b"content-security-policy", DOCS_CSP.encode())]
_NAMING_SOFTWARE = frozenset({b"server", b"x-powered-by"})


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _DOCS_HEADERS if scope["path"] in DOCS_PATHS else API_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    pair for pair in message.get("headers", []) if pair[0] not in _NAMING_SOFTWARE
                ]
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
