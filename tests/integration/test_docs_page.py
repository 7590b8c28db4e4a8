"""/docs over plain HTTP (no browser): the page and its assets come from the service's own
origin, under a CSP that names no other, and the assets keep the house rules of any route.
tests/browser/test_docs_page.py opens the same page in Chromium."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from payments_api.middleware.security_headers import API_CSP
from tests.integration.test_security_headers import csp_directives

SCHEME_SOURCES = frozenset({"data:", "https:"})
"""The contract's scheme sources (images and fonts): a scheme, no host."""


class References(HTMLParser):
    """Every URL an HTML page refers to, and the text of any inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href", "data-openapi-url", "spec-url", "action", "poster"):
            if values.get(name):
                self.urls.append(str(values[name]))
        self._in_script_without_src = tag == "script" and not values.get("src")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script_without_src = False

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts.append(data)


async def docs_page(client: httpx.AsyncClient) -> References:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    references = References()
    references.feed(response.text)
    return references


async def test_the_docs_page_refers_only_to_its_own_origin(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    page = await docs_page(client)

    assert page.urls, "the page loads nothing"
    assert [url for url in page.urls if not re.match(r"^/(?!/)", url)] == []
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", response.text), "another origin is named"
    assert page.inline_scripts == [], "an inline script needs 'unsafe-inline'"
    for url in page.urls:
        assert (await client.get(url)).status_code == 200, url


async def test_the_docs_csp_names_no_other_origin(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    csp = csp_directives(response.headers["content-security-policy"])

    foreign = {
        source
        for sources in csp.values()
        for source in sources
        if not source.startswith("'") and source not in SCHEME_SOURCES
    }
    assert foreign == set()
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert csp["script-src-attr"] == ["'none'"]
    assert set(csp["style-src"]) == {"'self'", "'unsafe-inline'"}
    # The API's own CSP, but for a browser told to fetch this origin's files over https.
    api = csp_directives(API_CSP)
    assert {**csp, "upgrade-insecure-requests": []} == api


async def test_every_docs_asset_is_answered_with_the_house_rules(
    client: httpx.AsyncClient,
) -> None:
    page = await docs_page(client)
    assets = [url for url in page.urls if url.startswith("/docs/assets/")]

    assert len(assets) >= 3  # the bundle, the styles and our start-up script at least
    for url in assets:
        got = await client.get(url, headers={"Accept-Encoding": "gzip"})
        head = await client.head(url)
        assert got.status_code == head.status_code == 200, url
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["cross-origin-resource-policy"] == "same-origin"
        assert "content-security-policy" in got.headers
        if len(got.content) >= 1024 and not url.endswith(".png"):
            assert got.headers["content-encoding"] == "gzip", url


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/nope.js",
        "/docs/assets/",
        "/docs/assets/..%2F..%2Fapp.py",
        "/docs/assets/swagger-ui.css/x",
        "/docs/",
        "/docs/oauth2-redirect",
        "/redoc",
    ],
)
async def test_an_unknown_docs_path_is_route_not_found(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 404
    assert response.json()["error"] == "ROUTE_NOT_FOUND"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_docs_asset_answers_only_get_and_head(client: httpx.AsyncClient) -> None:
    response = await client.post("/docs/assets/swagger-init.js")

    assert response.status_code == 405
    assert response.json()["error"] == "METHOD_NOT_ALLOWED"
    assert response.headers["allow"] == "GET, HEAD"


async def test_swagger_ui_starts_without_the_validator_badge(client: httpx.AsyncClient) -> None:
    script = (await client.get("/docs/assets/swagger-init.js")).text

    assert "validatorUrl: null" in script
    assert "SwaggerUIBundle(" in script
