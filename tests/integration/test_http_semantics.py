"""HTTP semantics the contract fixes for every route: bounded request headers, header values
compared without the whitespace around them, and no redirect built from `Host`."""

from __future__ import annotations

import httpx
import pytest

from payments_api.config.constants import MAX_HEADER_BYTES, MAX_HEADER_COUNT
from tests.fixtures.apps import LogCapture
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


# --- bounded request headers: 100 fields, 16 KiB in all -------------------------------------


def header_bytes(request: httpx.Request) -> int:
    """The request's header fields in all, each as its `name: value` line with its CRLF."""
    return sum(len(name) + len(value) + 4 for name, value in request.headers.raw)


def request_with_headers(
    client: httpx.AsyncClient, fields: int, size: int | None = None, path: str = "/health"
) -> httpx.Request:
    """A GET of `path` with exactly `fields` header fields (httpx's own included), the last
    one padded so that they come to `size` bytes in all when given."""
    own = len(client.build_request("GET", path).headers.raw)
    extra = [(f"x-pad-{index}", "v") for index in range(fields - own)]
    request = client.build_request("GET", path, headers=extra)
    if size is not None:
        name, value = extra[-1]
        extra[-1] = (name, value + "v" * (size - header_bytes(request)))
        request = client.build_request("GET", path, headers=extra)
        assert header_bytes(request) == size
    assert len(request.headers.raw) == fields
    return request


def assert_headers_too_large(response: httpx.Response) -> None:
    assert response.status_code == 431, response.text
    body = response.json()
    assert body["error"] == "HEADERS_TOO_LARGE"
    assert set(body) == {"error", "message", "requestId"}
    assert body["requestId"] == response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_as_many_header_fields_as_allowed_are_served(client: httpx.AsyncClient) -> None:
    response = await client.send(request_with_headers(client, MAX_HEADER_COUNT))
    assert response.status_code == 200, response.text


async def test_one_header_field_too_many_is_a_431(client: httpx.AsyncClient) -> None:
    response = await client.send(request_with_headers(client, MAX_HEADER_COUNT + 1))
    assert_headers_too_large(response)


async def test_headers_of_exactly_the_size_allowed_are_served(client: httpx.AsyncClient) -> None:
    response = await client.send(request_with_headers(client, 10, MAX_HEADER_BYTES))
    assert response.status_code == 200, response.text


async def test_headers_one_byte_over_the_size_allowed_are_a_431(
    client: httpx.AsyncClient,
) -> None:
    response = await client.send(request_with_headers(client, 10, MAX_HEADER_BYTES + 1))
    assert_headers_too_large(response)


async def test_one_header_over_the_size_allowed_is_a_431_before_authentication(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Authorization": "Bearer " + "x" * MAX_HEADER_BYTES}
    response = await client.get("/api/v1/payments", headers=headers)
    assert_headers_too_large(response)
    assert "ratelimit-limit" not in response.headers


async def test_a_431_is_logged_as_a_security_event_and_an_access_line(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.send(request_with_headers(client, MAX_HEADER_COUNT + 1))
    request_id = response.headers["x-request-id"]
    mine = [record for record in logs.records if record.get("requestId") == request_id]
    assert any(
        record.get("security") is True and record.get("headerCount") == MAX_HEADER_COUNT + 1
        for record in mine
    ), mine
    assert any(
        record["message"] == "request completed" and record["statusCode"] == 431 for record in mine
    ), mine
