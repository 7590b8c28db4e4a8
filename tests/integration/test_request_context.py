"""X-Request-ID on every response, and the access log line that carries it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.apps import CLIENT_PEER, LogCapture
from tests.fixtures.factories import create_merchant, register_user

CLIENT_IP = CLIENT_PEER[0]  # the peer address the `client` fixture's transport reports


def is_sane_request_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all(0x20 <= ord(char) < 0x7F for char in value)


def access_log(logs: LogCapture, request_id: str) -> dict[str, Any]:
    lines = [
        record
        for record in logs.records
        if record.get("message") == "request completed" and record.get("requestId") == request_id
    ]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    "request_id",
    ["abc-123", "client/trace:0af7651916cd43dd8448eb211c80319c", "with spaces ok", "x" * 128],
)
async def test_sane_request_id_is_echoed(client: httpx.AsyncClient, request_id: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id


@pytest.mark.parametrize(
    "raw",
    [
        b"x" * 129,
        b"tab\there",
        b"bell\x07",
        b"del\x7f",
        "caf\u00e9".encode(),
    ],
    ids=["129-chars", "tab", "control", "del", "non-ascii"],
)
async def test_insane_request_id_is_replaced(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.get("/health", headers={"X-Request-ID": raw})
    replaced = response.headers["x-request-id"]
    assert replaced.encode("latin-1") != raw
    assert is_sane_request_id(replaced)


async def test_empty_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": ""})
    assert is_sane_request_id(response.headers["x-request-id"])


async def test_request_id_is_generated_when_absent_and_unique(client: httpx.AsyncClient) -> None:
    first = await client.get("/health")
    second = await client.get("/health")
    assert is_sane_request_id(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_error_responses_carry_the_request_id_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/me", headers={"X-Request-ID": "err-1"})
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "err-1"
    assert response.json()["requestId"] == "err-1"


async def test_access_log_line_describes_the_request(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    await client.get(
        "/health", headers={"X-Request-ID": "log-line-1", "User-Agent": "shop-app/2.3 (iOS)"}
    )
    line = access_log(logs, "log-line-1")
    assert line["method"] == "GET"
    assert line["path"] == "/health"
    assert line["statusCode"] == 200
    assert isinstance(line["durationMs"], int | float)
    assert line["durationMs"] >= 0
    assert line["userAgent"] == "shop-app/2.3 (iOS)"
    assert line["ip"] == CLIENT_IP
    assert "userId" not in line
    assert "merchantId" not in line


async def test_access_log_line_has_the_generated_request_id(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    response = await client.get("/no/such/route", headers={"X-Request-ID": "\x01"})
    line = access_log(logs, response.headers["x-request-id"])
    assert line["statusCode"] == 404
    assert line["path"] == "/no/such/route"


async def test_access_log_line_names_the_authenticated_user(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    user = await register_user(client)
    await client.get("/api/v1/users/me", headers={**user.headers, "X-Request-ID": "me-1"})
    line = access_log(logs, "me-1")
    assert line["userId"] == user.user_id
    assert line["statusCode"] == 200
    assert "merchantId" not in line


async def test_access_log_line_names_the_merchant(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    merchant = await create_merchant(client)
    await client.get(
        "/api/v1/merchants/me", headers={**merchant.headers, "X-Request-ID": "merchant-1"}
    )
    line = access_log(logs, "merchant-1")
    assert line["merchantId"] == merchant.merchant_id
    assert line["path"] == "/api/v1/merchants/me"
    assert "userId" not in line


async def test_user_of_one_request_does_not_leak_into_the_next_log_line(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    user = await register_user(client)
    await client.get("/api/v1/users/me", headers=user.headers)
    await client.get("/health", headers={"X-Request-ID": "anonymous-after"})
    line = access_log(logs, "anonymous-after")
    assert "userId" not in line


async def test_lines_logged_during_a_request_carry_its_request_id(
    logs: LogCapture, client: httpx.AsyncClient
) -> None:
    await client.post(
        "/api/v1/auth/token",
        json={"email": "nobody@example.com", "password": "wrong-password"},
        headers={"X-Request-ID": "login-7"},
    )
    security = [record for record in logs.records if record.get("security") is True]
    assert security
    assert all(record["requestId"] == "login-7" for record in security)
