"""Every error a client can meet has the contract's body: error, message, requestId (+details).

The app of this module has a small body limit and one throwaway route that fails, both set
before the lifespan starts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from payments_api.app import create_app
from payments_api.config.settings import Settings
from tests.fixtures.apps import LogCapture

MAX_BODY_BYTES = 2048
INTERNAL_DETAIL = "driver exploded talking to 10.0.0.5:27017 as payments_rw"
ERROR_KEYS = {"error", "message", "requestId"}


async def _explode() -> None:
    raise RuntimeError(INTERNAL_DETAIL)


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> FastAPI:
    application = create_app(make_settings(max_body_bytes=MAX_BODY_BYTES))
    application.add_api_route("/test-only/explode", _explode, methods=["GET"])
    return application


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, object] = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["requestId"] == response.headers["x-request-id"]
    return body


def valid_user_body() -> dict[str, str]:
    return {"email": "errors@example.com", "password": "long-enough-pw", "name": "Errors"}


async def test_unknown_route_is_404_route_not_found_naming_method_and_path(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/the/path", params={"q": "1"})
    body = assert_error(response, 404, "ROUTE_NOT_FOUND")
    assert body["message"] == "Cannot GET /the/path"
    assert set(body) == ERROR_KEYS


async def test_unknown_route_message_names_the_method_used(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/nothing-here", json={})
    body = assert_error(response, 404, "ROUTE_NOT_FOUND")
    assert body["message"] == "Cannot POST /api/v1/nothing-here"


async def test_wrong_method_on_known_route_is_405(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    body = assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert set(body) == ERROR_KEYS
    assert "GET" in response.headers["allow"]


async def test_malformed_json_is_400_invalid_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/users",
        content=b'{"email": "a@example.com", "password": ',
        headers={"Content-Type": "application/json"},
    )
    body = assert_error(response, 400, "INVALID_JSON")
    assert set(body) == ERROR_KEYS


async def test_wrong_types_are_422_with_the_body_field_names(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/users", json={"email": "not-an-email", "password": 12345678, "name": "N"}
    )
    body = assert_error(response, 422, "VALIDATION_ERROR")
    assert set(body) == {*ERROR_KEYS, "details"}
    details = body["details"]
    assert isinstance(details, list)
    assert {detail["field"] for detail in details} == {"email", "password"}
    for detail in details:
        assert set(detail) == {"field", "message"}
        assert detail["message"]


async def test_missing_fields_are_422_naming_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/users", json={})
    body = assert_error(response, 422, "VALIDATION_ERROR")
    details = body["details"]
    assert isinstance(details, list)
    assert {detail["field"] for detail in details} == {"email", "password", "name"}


async def test_too_short_password_is_422_on_password(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/users", json={**valid_user_body(), "password": "short"})
    body = assert_error(response, 422, "VALIDATION_ERROR")
    assert [detail["field"] for detail in body["details"]] == ["password"]  # type: ignore[union-attr]


async def test_error_request_id_is_the_clients_when_it_sent_one(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/nowhere", headers={"X-Request-ID": "client-chosen-42"})
    body = assert_error(response, 404, "ROUTE_NOT_FOUND")
    assert body["requestId"] == "client-chosen-42"


async def test_unhandled_exception_is_a_bare_500_internal_error(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    response = await client.get("/test-only/explode")
    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert set(body) == ERROR_KEYS
    assert INTERNAL_DETAIL not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text


async def test_unhandled_exception_is_logged_with_its_traceback(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    response = await client.get("/test-only/explode")
    request_id = response.headers["x-request-id"]
    records = [record for record in logs.records if record.get("requestId") == request_id]
    logged = json.dumps(records)
    assert "Traceback" in logged
    assert "RuntimeError" in logged
    assert INTERNAL_DETAIL in logged
    assert any(record["level"] == "error" for record in records)


async def test_content_length_over_the_limit_is_413_before_reading(
    client: httpx.AsyncClient,
) -> None:
    sent: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            chunk = b" " * 1024
            sent.append(chunk)
            yield chunk

    response = await client.post(
        "/api/v1/users",
        content=body(),
        headers={"Content-Type": "application/json", "Content-Length": str(10 * 1024)},
    )
    body_json = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert set(body_json) == ERROR_KEYS
    assert sent == []


async def test_plain_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    payload = {**valid_user_body(), "name": "x" * (MAX_BODY_BYTES + 1)}
    response = await client.post("/api/v1/users", json=payload)
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_body_of_exactly_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    payload = valid_user_body()
    padding = MAX_BODY_BYTES - len(json.dumps(payload).encode())
    content = json.dumps(payload).encode()[:-1] + b" " * padding + b"}"
    assert len(content) == MAX_BODY_BYTES
    response = await client.post(
        "/api/v1/users", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text


async def test_chunked_body_over_the_limit_is_413_before_it_is_read_in_full(
    client: httpx.AsyncClient,
) -> None:
    chunks = 64
    sent: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(chunks):
            chunk = b"x" * 1024
            sent.append(chunk)
            yield chunk
        yield b'"}'

    response = await client.post(
        "/api/v1/users", content=body(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    body_json = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert set(body_json) == ERROR_KEYS
    assert len(sent) < chunks


async def test_chunked_body_under_the_limit_is_served(client: httpx.AsyncClient) -> None:
    encoded = json.dumps({**valid_user_body(), "email": "chunked@example.com"}).encode()

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(encoded), 16):
            yield encoded[start : start + 16]

    response = await client.post(
        "/api/v1/users", content=body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
