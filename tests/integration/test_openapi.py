"""The OpenAPI description (`/openapi.json`) tells schema-driven tools the truth about inputs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from payments_api.controllers.idempotency_keys import optional_idempotency_key
from payments_api.errors import BadRequestError

INT64_MAX = 2**63 - 1
MAX_PAGE_SIZE = 100


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


# --- who may call: the security schemes ----------------------------------------------------

USER = [{"userToken": []}]
MERCHANT = [{"merchantKey": []}]
EITHER = [{"userToken": []}, {"merchantKey": []}]
SECURITY = {
    "POST /api/v1/users": None,
    "POST /api/v1/auth/token": None,
    "GET /api/v1/users/me": USER,
    "GET /api/v1/users/me/stats": USER,
    "PATCH /api/v1/users/{userId}": USER,  # an admin: a user's token
    "POST /api/v1/merchants": USER,
    "GET /api/v1/merchants/me": MERCHANT,
    "GET /api/v1/merchants/me/payments": MERCHANT,
    "GET /api/v1/merchants/{merchantId}": EITHER,
    "PATCH /api/v1/merchants/me": MERCHANT,
    "PATCH /api/v1/merchants/{merchantId}": USER,
    "POST /api/v1/merchants/me/webhook-secret": MERCHANT,
    "GET /api/v1/merchants/me/api-keys": MERCHANT,
    "POST /api/v1/merchants/me/api-keys": MERCHANT,
    "POST /api/v1/merchants/me/api-keys/{keyId}/roll": MERCHANT,
    "DELETE /api/v1/merchants/me/api-keys/{keyId}": MERCHANT,
    "POST /api/v1/merchants/{merchantId}/api-keys": USER,
    "POST /api/v1/payments": USER,
    "GET /api/v1/payments": USER,
    "GET /api/v1/payments/{paymentId}": EITHER,
    "POST /api/v1/payments/{paymentId}/cancel": EITHER,
    "POST /api/v1/payments/{paymentId}/capture": EITHER,
    "POST /api/v1/payments/{paymentId}/refund": EITHER,
    "GET /api/v1/payments/{paymentId}/refunds": EITHER,
    "GET /api/v1/events": USER,
    "POST /api/v1/events/{eventId}/redeliver": USER,
    "GET /api/v1/merchants/me/events": MERCHANT,
    "POST /api/v1/merchants/me/events/{eventId}/redeliver": MERCHANT,
}
"""The contract's "who" of each route, as OpenAPI security requirements (alternatives)."""


async def test_both_security_schemes_are_declared(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]

    assert schemes["userToken"] | {"description": ""} == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "",
    }
    assert schemes["merchantKey"]["type"] == "http"
    assert schemes["merchantKey"]["scheme"] == "bearer"
    assert "sk_" in schemes["merchantKey"]["bearerFormat"]


async def test_each_route_declares_who_may_call_it(openapi: dict[str, Any]) -> None:
    declared = {
        name: operation.get("security")
        for name, operation in operations(openapi)
        if name.split()[1].startswith("/api/")
    }

    assert declared == SECURITY


# --- headers ---------------------------------------------------------------------------------


def header(operation: dict[str, Any], name: str) -> dict[str, Any]:
    found = [p for p in operation.get("parameters", []) if p["in"] == "header"]
    assert [p["name"] for p in found if p["name"] == name] == [name]
    return next(p for p in found if p["name"] == name)


async def test_every_operation_declares_the_request_id_it_may_send_and_gets_back(
    openapi: dict[str, Any],
) -> None:
    for name, operation in operations(openapi):
        assert header(operation, "X-Request-ID")["required"] is False, name
        for status, response in operation["responses"].items():
            answer = response["headers"]["X-Request-ID"]
            assert answer["required"] is True, (name, status)
            assert answer["schema"]["maxLength"] == 128


async def test_answers_declare_the_headers_that_come_with_them(openapi: dict[str, Any]) -> None:
    for name, operation in operations(openapi):
        responses = operation["responses"]
        if "401" in responses:
            assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True, name
        if "429" in responses:
            assert responses["429"]["headers"]["Retry-After"]["required"] is True, name
        if name.split()[1].startswith("/api/"):
            success = min(status for status in responses if status.startswith("2"))
            assert "RateLimit-Remaining" in responses[success]["headers"], name
    create = openapi["paths"]["/api/v1/payments"]["post"]["responses"]
    assert "Idempotent-Replayed" in create["200"]["headers"]


@pytest.mark.parametrize(
    ("path", "required"),
    [("/api/v1/payments", True), ("/api/v1/payments/{paymentId}/refund", False)],
)
async def test_the_idempotency_key_header_is_declared_with_its_limits(
    openapi: dict[str, Any], path: str, required: bool
) -> None:
    key = header(openapi["paths"][path]["post"], "Idempotency-Key")

    assert key["required"] is required
    assert key["schema"]["type"] == "string"
    assert key["schema"]["minLength"] == 1
    assert key["schema"]["maxLength"] == 255


@pytest.mark.parametrize(
    "value",
    ["k", "order-1001", "~" * 255, "a b", "x" * 256, "", "caf\u00e9", "tab\there", "\x7f", "k\n"],
    ids=repr,
)
async def test_the_declared_pattern_accepts_exactly_what_the_route_accepts(
    openapi: dict[str, Any], value: str
) -> None:
    schema = header(openapi["paths"]["/api/v1/payments"]["post"], "Idempotency-Key")["schema"]
    try:
        optional_idempotency_key(value)
    except BadRequestError:
        accepted = False
    else:
        accepted = True

    ecma_pattern = schema["pattern"].replace("$", r"\Z")  # JSON Schema's $ ends the input
    assert bool(re.search(ecma_pattern, value)) is accepted
    assert (schema["minLength"] <= len(value) <= schema["maxLength"]) >= accepted


# --- every status a route can answer ---------------------------------------------------------


def error_statuses(operation: dict[str, Any]) -> set[int]:
    return {int(status) for status in operation["responses"] if int(status) >= 400}


async def test_every_route_with_a_json_body_declares_invalid_json_too_large_and_invalid(
    openapi: dict[str, Any],
) -> None:
    with_body = {
        name: error_statuses(operation)
        for name, operation in operations(openapi)
        if "requestBody" in operation
    }

    assert len(with_body) == 13
    assert {
        name for name, statuses in with_body.items() if not {400, 413, 422} <= statuses
    } == set()


async def test_every_api_route_declares_the_rate_limit_and_every_secured_one_401(
    openapi: dict[str, Any],
) -> None:
    api = {
        name: operation
        for name, operation in operations(openapi)
        if name.split()[1].startswith("/api/")
    }

    assert {name for name, op in api.items() if 429 not in error_statuses(op)} == set()
    assert {
        name for name, op in api.items() if op.get("security") and 401 not in error_statuses(op)
    } == set()


def error_bodies(document: dict[str, Any], response: dict[str, Any]) -> list[dict[str, Any]]:
    """The body schemas one error answer is declared with (one per code)."""
    schema = response["content"]["application/json"]["schema"]
    return [resolve(document, option) for option in schema.get("anyOf", [schema])]


def declared_codes(document: dict[str, Any], path: str, method: str, status: int) -> set[str]:
    response = document["paths"][path][method]["responses"][str(status)]
    return {body["properties"]["error"]["const"] for body in error_bodies(document, response)}


async def test_every_error_answer_is_described_as_the_contracts_error_body_by_code(
    openapi: dict[str, Any],
) -> None:
    wrong = []
    for name, operation in operations(openapi):
        for status, response in operation["responses"].items():
            if int(status) < 400 or name.startswith("GET /ready"):
                continue
            for body in error_bodies(openapi, response):
                required = set(body.get("required", []))
                code = body.get("properties", {}).get("error", {}).get("const")
                if not {"error", "message", "requestId"} <= required or not code:
                    wrong.append(f"{name} {status} {body.get('title')}")
                elif code not in response["description"]:
                    wrong.append(f"{name} {status} {code} undescribed")

    assert wrong == []
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


async def test_payment_creation_names_each_error_code_under_its_status(
    openapi: dict[str, Any],
) -> None:
    def codes(status: int) -> set[str]:
        return declared_codes(openapi, "/api/v1/payments", "post", status)

    assert codes(400) == {"INVALID_JSON", "MISSING_IDEMPOTENCY_KEY", "INVALID_IDEMPOTENCY_KEY"}
    assert codes(402) == {"PAYMENT_DECLINED"}
    assert codes(403) == {"FORBIDDEN", "USER_INACTIVE"}
    assert codes(404) == {"MERCHANT_NOT_FOUND", "PAYMENT_NOT_FOUND"}
    assert codes(409) == {"IDEMPOTENCY_KEY_IN_USE", "DUPLICATE_ORDER_ID"}
    assert codes(422) == {
        "VALIDATION_ERROR",
        "IDEMPOTENCY_KEY_REUSED",
        "AMOUNT_TOO_LARGE",
        "DAILY_LIMIT_EXCEEDED",
    }
    assert codes(503) == {"GATEWAY_UNAVAILABLE", "PAYMENT_NOT_PROCESSED", "SERVICE_UNAVAILABLE"}


async def test_a_refund_names_each_error_code_under_its_status(openapi: dict[str, Any]) -> None:
    def codes(status: int) -> set[str]:
        return declared_codes(openapi, "/api/v1/payments/{paymentId}/refund", "post", status)

    assert codes(409) == {
        "PAYMENT_NOT_REFUNDABLE",
        "AVAILABLE_AMOUNT_MISMATCH",
        "IDEMPOTENCY_KEY_IN_USE",
    }
    assert codes(422) == {"VALIDATION_ERROR", "IDEMPOTENCY_KEY_REUSED", "REFUND_EXCEEDS_AVAILABLE"}
    request = resolve(
        openapi,
        openapi["paths"]["/api/v1/payments/{paymentId}/refund"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"],
    )
    [guard] = [
        option
        for option in request["properties"]["expectedAvailableAmount"]["anyOf"]
        if option.get("type") == "integer"
    ]
    assert (guard["minimum"], guard["maximum"]) == (0, 10**15)
    assert "expectedAvailableAmount" not in request.get("required", [])


async def test_an_error_code_declares_the_fields_its_body_carries(
    openapi: dict[str, Any],
) -> None:
    bodies = {
        body["properties"]["error"]["const"]: body
        for name, operation in operations(openapi)
        for status, response in operation["responses"].items()
        if int(status) >= 400 and not name.startswith("GET /ready")
        for body in error_bodies(openapi, response)
    }

    declined = bodies["PAYMENT_DECLINED"]
    assert "payment" in declined["required"]
    assert resolve(openapi, declined["properties"]["payment"])["title"] == "PaymentOut"
    assert bodies["REFUND_EXCEEDS_AVAILABLE"]["properties"]["availableAmount"]["type"] == "integer"
    assert "availableAmount" in bodies["REFUND_EXCEEDS_AVAILABLE"]["required"]
    assert bodies["AVAILABLE_AMOUNT_MISMATCH"]["properties"]["availableAmount"]["type"] == "integer"
    assert "availableAmount" in bodies["AVAILABLE_AMOUNT_MISMATCH"]["required"]
    assert "remainingToday" in bodies["DAILY_LIMIT_EXCEEDED"]["required"]
    assert "maxAmount" in bodies["AMOUNT_TOO_LARGE"]["required"]
    assert "details" in bodies["VALIDATION_ERROR"]["required"]
    assert "retryAfter" in bodies["TOO_MANY_REQUESTS"]["required"]


async def test_malformed_json_is_a_declared_400_on_every_route_with_a_body(
    client: httpx.AsyncClient, openapi: dict[str, Any]
) -> None:
    with_body = [name for name, operation in operations(openapi) if "requestBody" in operation]

    for name in with_body:
        method, path = name.split()
        url = path.replace("{userId}", "usr_x").replace("{paymentId}", "pay_x")
        response = await client.request(
            method, url, content=b'{"amount": ', headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 400, (name, response.text)
        assert response.json()["error"] == "INVALID_JSON"


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ("PaymentCreate", "productName"),
        ("UserCreate", "name"),
        ("UserCreate", "phoneNumber"),
        ("MerchantCreate", "name"),
        ("MerchantCreate", "category"),
        ("CancelRequest", "reason"),
        ("RefundRequest", "reason"),
        ("TokenRequest", "email"),
    ],
)
async def test_text_fields_declare_the_pattern_they_are_checked_against(
    openapi: dict[str, Any], model: str, field: str
) -> None:
    schema = openapi["components"]["schemas"][model]["properties"][field]
    options = [resolve(openapi, option) for option in schema.get("anyOf", [schema])]

    assert any("pattern" in option for option in options), schema


@pytest.mark.parametrize("name", ["startDate", "endDate"])
async def test_history_dates_are_described_as_dates_or_date_times(
    openapi: dict[str, Any], name: str
) -> None:
    parameters = openapi["paths"]["/api/v1/payments"]["get"]["parameters"]
    schema = next(p["schema"] for p in parameters if p["name"] == name)

    assert {option["format"] for option in schema["anyOf"]} == {"date", "date-time"}
