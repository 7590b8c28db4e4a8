"""HTTP semantics the contract fixes for every route: header values compared without the
whitespace around them, and no redirect built from `Host`."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.factories import register_user

EVIL_HOST = "evil.example"
ALLOWED_ORIGIN = "https://shop.example.com"  # in the test settings' ALLOWED_ORIGINS


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/payments/"),
        ("POST", "/api/v1/payments/"),
        ("GET", "/api/v1/users/me/"),
        ("GET", "/health/"),
    ],
)
async def test_a_trailing_slash_is_a_404_and_never_a_redirect_to_the_host(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    user = await register_user(client)
    response = await client.request(
        method, path, headers={**user.headers, "Host": EVIL_HOST}, json={}
    )
    assert response.status_code == 404, response.text
    assert "location" not in response.headers
    assert EVIL_HOST not in response.text
    body = response.json()
    assert body["error"] == "ROUTE_NOT_FOUND"
    assert body["message"] == f"Cannot {method} {path}"


async def test_a_trailing_slash_without_credentials_is_the_same_404(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/payments/", headers={"Host": EVIL_HOST})
    assert response.status_code == 404, response.text
    assert "location" not in response.headers
    assert response.json()["message"] == "Cannot GET /api/v1/payments/"


# --- header values without the whitespace around them (RFC 9110 OWS) -----------------------

PADDINGS = [" ", "\t", "  \t"]


@pytest.mark.parametrize("pad", PADDINGS, ids=repr)
async def test_a_bearer_credential_with_whitespace_around_it_is_accepted(
    client: httpx.AsyncClient, pad: str
) -> None:
    user = await register_user(client)
    authorization = f"{pad}Bearer {user.token}{pad}"
    response = await client.get("/api/v1/users/me", headers={"Authorization": authorization})
    assert response.status_code == 200, response.text
    assert response.json()["user"]["userId"] == user.user_id


@pytest.mark.parametrize("pad", PADDINGS, ids=repr)
async def test_a_request_id_with_whitespace_around_it_is_echoed_without_it(
    client: httpx.AsyncClient, pad: str
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": f"{pad}trace-42{pad}"})
    assert response.headers["x-request-id"] == "trace-42"


@pytest.mark.parametrize("pad", PADDINGS, ids=repr)
async def test_an_allowed_origin_with_whitespace_around_it_is_allowed(
    client: httpx.AsyncClient, pad: str
) -> None:
    response = await client.get("/health", headers={"Origin": f"{pad}{ALLOWED_ORIGIN}{pad}"})
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
