"""Malformed JSON, however it is malformed, is a 400 INVALID_JSON with the contract's body."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.factories import register_user
from tests.fixtures.payments import PAYMENTS, new_key

DEPTH = 100_000
"""Nesting far beyond what any JSON parser here recurses into."""
DIGITS = 5_000
"""A number longer than Python converts to an int (its limit is 4,300 digits)."""

USER_FIELDS = b'"email": "json@example.com", "password": "long-enough-pw", "name": "J"'

MALFORMED = {
    "bad-syntax": b'{"email": "a@example.com", "password": ',
    "invalid-utf8": b'{"email": "\xff\xfe@example.com", "password": "long-enough-pw", "name": "J"}',
    "truncated-utf8": b'{"name": "caf\xc3"}',
    "deep-array": b'{"name": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    "deep-object": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "long-number": b"{" + USER_FIELDS + b', "age": 1' + b"0" * DIGITS + b"}",
}


def assert_invalid_json(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "INVALID_JSON"
    assert set(body) == {"error", "message", "requestId"}
    assert body["requestId"] == response.headers["x-request-id"]


@pytest.mark.parametrize("content", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_json_to_an_open_route_is_400_invalid_json(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(
        "/api/v1/users", content=content, headers={"Content-Type": "application/json"}
    )
    assert_invalid_json(response)


@pytest.mark.parametrize("content", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_json_to_payment_creation_is_400_invalid_json(
    client: httpx.AsyncClient, content: bytes
) -> None:
    user = await register_user(client)
    response = await client.post(
        PAYMENTS,
        content=content,
        headers={
            **user.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": new_key(),
        },
    )
    assert_invalid_json(response)
