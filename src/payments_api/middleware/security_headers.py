"""Helmet's defaults for an API, added to every response.

The docs page (routes/docs.py) loads everything from this origin and runs no inline script, so
its CSP is the API's, less one directive: `upgrade-insecure-requests`, which makes a browser
fetch the page's own files over https. A page opened over plain http by a host name (an
operator on an internal network: `http://payments-api.internal:3000/docs`) would then ask for
its script and styles on a port that speaks no TLS, and stay blank. The page's URLs are all
relative, so over https they are https without it (tests/browser/test_docs_page.py)."""

from __future__ import annotations

Headers = list[tuple[bytes, bytes]]

API_CSP = (
    "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; "
    "form-action 'self'; frame-ancestors 'none'; img-src 'self' data: https:; "
    "object-src 'none'; script-src 'self'; script-src-attr 'none'; "
    "style-src 'self' 'unsafe-inline'; upgrade-insecure-requests"
)
DOCS_CSP = API_CSP.removesuffix("; upgrade-insecure-requests")
DOCS_PATHS = frozenset({"/docs"})

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
