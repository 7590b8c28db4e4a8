"""HTTP semantics the contract fixes for every route: no redirect built from `Host`."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.factories import register_user

EVIL_HOST = "evil.example"


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
