"""Helmet's defaults for an API, added to every response; the docs page alone gets a CSP
that lets Swagger UI load its script and styles."""

from __future__ import annotations

Headers = list[tuple[bytes, bytes]]

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


def security_headers(path: str) -> Headers:
    """The headers every answer to `path` carries (computed once per process)."""
    return _DOCS_HEADERS if path in DOCS_PATHS else API_HEADERS


def without_naming_software(headers: Headers) -> Headers:
    """`headers` less any that names the software (the same list when there is none)."""
    for name, _ in headers:
        if name in _NAMING_SOFTWARE:
            return [pair for pair in headers if pair[0] not in _NAMING_SOFTWARE]
    return headers
