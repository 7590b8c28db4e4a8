"""Browser-facing headers: security headers on every response, CORS, gzip (the docs page's own
CSP: test_docs_page.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from payments_api.app import create_app
from payments_api.config.settings import Settings

ALLOWED_ORIGIN = "https://shop.example.com"  # in the test settings' ALLOWED_ORIGINS
OTHER_ORIGIN = "https://evil.example.net"
MAX_BODY_BYTES = 2048


async def _names_its_software() -> JSONResponse:
    return JSONResponse(
        {"ok": True}, headers={"Server": "uvicorn", "X-Powered-By": "FastAPI/Starlette"}
    )


async def _explode() -> None:
    raise RuntimeError("boom")


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> FastAPI:
    application = create_app(make_settings(max_body_bytes=MAX_BODY_BYTES))
    application.add_api_route("/test-only/software", _names_its_software, methods=["GET"])
    application.add_api_route("/test-only/explode", _explode, methods=["GET"])
    return application


def csp_directives(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


async def _ok(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/health")


async def _not_found(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/nope")


async def _invalid(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/api/v1/users", json={})


async def _too_large(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/api/v1/users", content=b"x" * (MAX_BODY_BYTES + 1))


async def _unauthorized(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/api/v1/users/me")


async def _wrong_method(client: httpx.AsyncClient) -> httpx.Response:
    return await client.delete("/health")


async def _crash(client: httpx.AsyncClient) -> httpx.Response:
    return await client.get("/test-only/explode")


RESPONSES = {
    200: _ok,
    401: _unauthorized,
    404: _not_found,
    405: _wrong_method,
    413: _too_large,
    422: _invalid,
    500: _crash,
}


@pytest.mark.parametrize("status", list(RESPONSES))
async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, status: int
) -> None:
    response = await RESPONSES[status](client)
    assert response.status_code == status
    headers = response.headers
    assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] in ("DENY", "SAMEORIGIN")
    assert headers["referrer-policy"]
    assert headers["cross-origin-opener-policy"]
    assert headers["cross-origin-resource-policy"]
    csp = csp_directives(headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'"]
    assert set(csp["style-src"]) == {"'self'", "'unsafe-inline'"}
    assert set(csp["img-src"]) == {"'self'", "data:", "https:"}
    assert "server" not in headers
    assert "x-powered-by" not in headers


async def test_headers_naming_the_software_are_removed(client: httpx.AsyncClient) -> None:
    response = await client.get("/test-only/software")
    assert response.status_code == 200
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers


async def test_security_headers_are_not_duplicated(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    for name in ("strict-transport-security", "content-security-policy", "x-frame-options"):
        assert len(response.headers.get_list(name)) == 1


async def test_openapi_lists_the_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"post"} <= set(paths["/api/v1/users"])
    assert {"get"} <= set(paths["/api/v1/users/me"])
    assert {"patch"} <= set(paths["/api/v1/users/{userId}"])
    assert {"post"} <= set(paths["/api/v1/auth/token"])
    assert {"post"} <= set(paths["/api/v1/merchants"])
    assert {"get"} <= set(paths["/api/v1/merchants/me"])
    assert {"get"} <= set(paths["/api/v1/merchants/{merchantId}"])
    assert {"/health", "/ready", "/metrics"} <= set(paths)


async def test_allowed_origin_is_echoed_with_credentials(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"Origin": ALLOWED_ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers.get("vary", "")


async def test_allowed_origin_can_read_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"Origin": ALLOWED_ORIGIN})
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed


async def test_preflight_from_allowed_origin_lists_methods_and_headers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        "/api/v1/users",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, idempotency-key",
        },
    )
    assert 200 <= response.status_code < 300
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "DELETE", "PATCH"}
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"content-type", "authorization", "x-requested-with", "idempotency-key"} <= allowed


async def test_disallowed_origin_gets_no_cors_on_a_simple_request(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health", headers={"Origin": OTHER_ORIGIN})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers


async def test_disallowed_origin_gets_no_cors_on_a_preflight(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/v1/users",
        headers={"Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-methods" not in response.headers


async def test_origin_that_only_prefixes_an_allowed_one_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health", headers={"Origin": ALLOWED_ORIGIN + ".evil.net"})
    assert "access-control-allow-origin" not in response.headers


async def test_request_without_origin_is_served_normally(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    assert "access-control-allow-origin" not in response.headers


async def test_large_response_is_gzipped_when_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert len(response.content) >= 1024
    assert response.headers["content-encoding"] == "gzip"
    assert "paths" in response.json()


async def test_large_response_is_not_gzipped_with_x_no_compression(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/openapi.json", headers={"Accept-Encoding": "gzip", "X-No-Compression": "1"}
    )
    assert len(response.content) >= 1024
    assert "content-encoding" not in response.headers
    assert "paths" in response.json()


async def test_large_response_is_not_gzipped_when_not_accepted(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in response.headers


async def test_small_response_is_not_gzipped(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert len(response.content) < 1024
    assert "content-encoding" not in response.headers


async def test_gzipped_response_keeps_security_headers_and_request_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/openapi.json", headers={"Accept-Encoding": "gzip", "X-Request-ID": "gz-1"}
    )
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["x-request-id"] == "gz-1"
    assert response.headers["x-content-type-options"] == "nosniff"
