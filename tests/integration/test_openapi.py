"""The OpenAPI description (`/openapi.json`) tells schema-driven tools the truth about inputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

INT64_MAX = 2**63 - 1
MAX_PAGE_SIZE = 100


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def integers(
    document: dict[str, Any], schema: dict[str, Any], at: str
) -> Iterator[tuple[str, Any]]:
    """Every integer schema reachable from `schema`: (where, its maximum or None)."""
    schema = resolve(document, schema)
    if schema.get("type") == "integer":
        yield at, schema.get("maximum", schema.get("exclusiveMaximum"))
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from integers(document, option, at)
    for name, prop in schema.get("properties", {}).items():
        yield from integers(document, prop, f"{at}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from integers(document, schema["items"], f"{at}[]")


def request_integers(document: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, operation in operations(document):
        for parameter in operation.get("parameters", []):
            yield from integers(document, parameter["schema"], f"{name} {parameter['name']}")
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body:
            yield from integers(document, body["schema"], f"{name} body")


async def test_every_integer_a_request_carries_has_an_upper_bound(
    openapi: dict[str, Any],
) -> None:
    found = dict(request_integers(openapi))

    assert found, "the description names no integer at all"
    unbounded = sorted(where for where, maximum in found.items() if maximum is None)
    assert unbounded == []
    assert all(maximum <= INT64_MAX for maximum in found.values())


async def test_the_deepest_page_still_skips_within_eight_bytes(openapi: dict[str, Any]) -> None:
    found = dict(request_integers(openapi))
    page = found["GET /api/v1/payments page"]
    limit = found["GET /api/v1/payments limit"]

    assert limit > 10 * MAX_PAGE_SIZE  # larger limits are clamped to 100, not refused
    assert (page - 1) * MAX_PAGE_SIZE <= INT64_MAX


async def test_money_is_bounded_at_ten_to_the_fifteen(openapi: dict[str, Any]) -> None:
    found = dict(request_integers(openapi))

    assert found["PATCH /api/v1/users/{userId} body.dailyLimit"] == 10**15
    assert found["POST /api/v1/payments body.amount"] == 10**15
    assert found["POST /api/v1/payments/{paymentId}/refund body.amount"] == 10**15


async def test_currency_is_described_as_the_list_of_accepted_codes(
    openapi: dict[str, Any],
) -> None:
    schema = openapi["components"]["schemas"]["PaymentCreate"]["properties"]["currency"]

    assert schema["default"] == "KRW"
    assert {"KRW", "USD", "JPY", "EUR"} <= set(schema["enum"])
    assert not {"ZZZ", "usd", "XXX", "XAU"} & set(schema["enum"])
