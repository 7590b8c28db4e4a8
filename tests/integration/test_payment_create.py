"""Creating a payment: the answers of `POST /api/v1/payments`, and what each leaves behind."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from tests.fixtures.apps import running
from tests.fixtures.factories import admin_headers, create_merchant, register_user, update_user
from tests.fixtures.payments import (
    PAYMENT_FIELDS,
    PAYMENTS,
    documents,
    payment_body,
    post_payment,
    user_and_merchant,
    with_idempotency_key,
)

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
ULID = r"[0-9A-HJKMNP-TV-Z]{26}"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["requestId"]
    return body


# --- 201 ------------------------------------------------------------------------------------


async def test_create_answers_201_with_the_full_completed_payment(
    client: httpx.AsyncClient,
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(
        client, user, payment_body(merchant.merchant_id, 15_000, productName="Iced Americano")
    )

    assert response.status_code == 201, response.text
    assert "Idempotent-Replayed" not in response.headers
    body = response.json()
    assert set(body) == {"success", "payment"}  # the message belongs to replays only
    assert body["success"] is True
    payment = body["payment"]
    assert set(payment) >= PAYMENT_FIELDS
    assert re.fullmatch(f"pay_{ULID}", payment["paymentId"])
    assert payment["userId"] == user.user_id
    assert payment["merchantId"] == merchant.merchant_id
    assert payment["amount"] == 15_000
    assert type(payment["amount"]) is int
    assert payment["currency"] == "KRW"
    assert payment["paymentMethod"] == "card"
    assert payment["productName"] == "Iced Americano"
    assert payment["status"] == "completed"
    assert isinstance(payment["transactionId"], str)
    assert payment["transactionId"]
    assert payment["refundedAmount"] == 0
    for unset in ("failureCode", "failureMessage", "cancelReason", "cancelledAt"):
        assert payment[unset] is None, unset
    for instant in ("createdAt", "updatedAt", "completedAt"):
        assert ISO_UTC.match(payment[instant]), (instant, payment[instant])


async def test_create_keeps_the_currency_and_method_it_was_given(
    client: httpx.AsyncClient,
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(
        client,
        user,
        payment_body(merchant.merchant_id, 1_000, currency="USD", paymentMethod="kakaopay_money"),
    )

    assert response.status_code == 201, response.text
    payment = response.json()["payment"]
    assert payment["currency"] == "USD"
    assert payment["paymentMethod"] == "kakaopay_money"


async def test_completed_payment_writes_one_ledger_record_and_one_completed_event(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(client, user, payment_body(merchant.merchant_id, 12_345))

    assert response.status_code == 201, response.text
    payment_id = response.json()["payment"]["paymentId"]
    records = await documents(app, "transactions", paymentId=payment_id)
    assert len(records) == 1
    record = records[0]
    assert record["type"] == "payment"
    assert record["amount"] == 12_345
    assert record["userId"] == user.user_id
    assert record["merchantId"] == merchant.merchant_id
    assert record["status"] == "succeeded"
    assert record["_id"].startswith("txn_")
    events = await documents(app, "events", paymentId=payment_id)
    assert [event["type"] for event in events] == ["payment.completed"]
    assert events[0]["_id"].startswith("evt_")
    assert events[0]["data"]["payment"]["status"] == "completed"


async def test_completed_payment_is_readable_by_its_owner(client: httpx.AsyncClient) -> None:
    user, merchant = await user_and_merchant(client)
    made = await post_payment(client, user, payment_body(merchant.merchant_id))
    created = made.json()["payment"]

    response = await client.get(f"{PAYMENTS}/{created['paymentId']}", headers=user.headers)

    assert response.status_code == 200
    assert response.json()["payment"] == created


# --- 402 ------------------------------------------------------------------------------------


async def test_amount_ending_402_is_declined_with_the_failed_payment(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(client, user, payment_body(merchant.merchant_id, 5_402))

    body = assert_error(response, 402, "PAYMENT_DECLINED")
    payment = body["payment"]
    assert set(payment) >= PAYMENT_FIELDS
    assert payment["status"] == "failed"
    assert payment["failureCode"] == "CARD_DECLINED"
    assert payment["failureMessage"]
    assert payment["amount"] == 5_402
    assert payment["completedAt"] is None
    assert payment["transactionId"] is None
    payment_id = payment["paymentId"]
    assert await documents(app, "transactions", paymentId=payment_id) == []
    events = await documents(app, "events", paymentId=payment_id)
    assert [event["type"] for event in events] == ["payment.failed"]


# --- the Idempotency-Key header -------------------------------------------------------------


async def test_missing_idempotency_key_is_400(client: httpx.AsyncClient, app: FastAPI) -> None:
    user, merchant = await user_and_merchant(client)

    response = await client.post(
        PAYMENTS, json=payment_body(merchant.merchant_id), headers=user.headers
    )

    assert_error(response, 400, "MISSING_IDEMPOTENCY_KEY")
    assert await documents(app, "payments") == []


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 256, id="256-chars"),
        pytest.param("", id="empty"),
        pytest.param("schlüssel-1", id="non-ascii"),
        pytest.param("key\twith-tab", id="control-char"),
        pytest.param("key\x7f", id="delete-char"),
    ],
)
async def test_malformed_idempotency_key_is_400(
    client: httpx.AsyncClient, app: FastAPI, key: str
) -> None:
    user, merchant = await user_and_merchant(client)
    headers = [
        (b"Authorization", f"Bearer {user.token}".encode()),
        (b"Idempotency-Key", key.encode("utf-8")),
    ]

    response = await client.post(PAYMENTS, json=payment_body(merchant.merchant_id), headers=headers)

    assert_error(response, 400, "INVALID_IDEMPOTENCY_KEY")
    assert await documents(app, "payments") == []


async def test_idempotency_key_of_255_printable_characters_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(client, user, payment_body(merchant.merchant_id), key="~ !" * 85)

    assert response.status_code == 201, response.text


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    [
        pytest.param(1000.5, id="float"),
        pytest.param(1000.0, id="integral-float"),
        pytest.param("1000", id="string"),
        pytest.param(True, id="boolean"),
        pytest.param(0, id="zero"),
        pytest.param(-5, id="negative"),
        pytest.param(None, id="null"),
        # Past the schema bound (10^15): refused by validation, never compared or stored, so
        # no integer that MongoDB's 8 bytes cannot hold gets near the driver.
        pytest.param(10**15 + 1, id="over-the-schema-bound"),
        pytest.param(2**63, id="2^63"),
        pytest.param(10**30, id="10^30"),
    ],
)
async def test_amount_that_is_not_a_positive_integer_is_422(
    client: httpx.AsyncClient, app: FastAPI, amount: Any
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(client, user, payment_body(merchant.merchant_id, amount))

    body = assert_error(response, 422, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "amount"
    assert body["details"][0]["message"]
    assert await documents(app, "payments") == []


async def test_missing_amount_is_422_naming_amount(client: httpx.AsyncClient) -> None:
    user, merchant = await user_and_merchant(client)
    body = payment_body(merchant.merchant_id)
    del body["amount"]

    response = await post_payment(client, user, body)

    assert assert_error(response, 422, "VALIDATION_ERROR")["details"][0]["field"] == "amount"


@pytest.mark.parametrize("method", ["cash", "", "CARD", None])
async def test_unknown_payment_method_is_422(
    client: httpx.AsyncClient, app: FastAPI, method: Any
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(
        client, user, payment_body(merchant.merchant_id, paymentMethod=method)
    )

    body = assert_error(response, 422, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "paymentMethod"
    assert await documents(app, "payments") == []


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("x" * 201, id="201"),
        pytest.param("Cold brew\n", id="trailing-newline"),
        pytest.param("Cold\tbrew", id="tab"),
        pytest.param("\x1c", id="file-separator"),
    ],
)
async def test_product_name_outside_1_to_200_characters_is_422(
    client: httpx.AsyncClient, app: FastAPI, name: str
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(
        client, user, payment_body(merchant.merchant_id, productName=name)
    )

    body = assert_error(response, 422, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "productName"
    assert "^" not in body["details"][0]["message"]  # words for a person, not the pattern
    assert await documents(app, "payments") == []


async def test_product_name_of_200_characters_is_accepted(client: httpx.AsyncClient) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(
        client, user, payment_body(merchant.merchant_id, productName="x" * 200)
    )

    assert response.status_code == 201, response.text
    assert response.json()["payment"]["productName"] == "x" * 200


@pytest.mark.parametrize(
    "currency",
    [
        "KR",
        "KRWX",
        "12$",
        pytest.param("ZZZ", id="not-in-iso-4217"),
        pytest.param("usd", id="lower-case"),
        pytest.param(" USD", id="padded"),
        pytest.param("DEM", id="withdrawn"),
        pytest.param("XAU", id="no-minor-unit"),
        pytest.param("XXX", id="no-currency"),
        pytest.param(840, id="numeric"),
    ],
)
async def test_currency_that_is_not_an_active_iso_4217_code_is_422(
    client: httpx.AsyncClient, currency: Any
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(
        client, user, payment_body(merchant.merchant_id, currency=currency)
    )

    assert assert_error(response, 422, "VALIDATION_ERROR")["details"][0]["field"] == "currency"


@pytest.mark.parametrize(
    ("currency", "amount"),
    [("KRW", 15_000), ("JPY", 1_500), ("USD", 1_299), ("KWD", 12_500), ("EUR", 999)],
)
async def test_active_iso_4217_currencies_are_accepted_in_their_minor_unit(
    client: httpx.AsyncClient, currency: str, amount: int
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(
        client, user, payment_body(merchant.merchant_id, amount, currency=currency)
    )

    assert response.status_code == 201, response.text
    assert response.json()["payment"]["currency"] == currency
    assert response.json()["payment"]["amount"] == amount


async def test_amount_above_max_payment_amount_is_422_amount_too_large(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(max_payment_amount=50_000)) as (app, client):
        user, merchant = await user_and_merchant(client)

        at_max = await post_payment(client, user, payment_body(merchant.merchant_id, 50_000))
        over = await post_payment(client, user, payment_body(merchant.merchant_id, 50_001))

        assert at_max.status_code == 201, at_max.text
        assert_error(over, 422, "AMOUNT_TOO_LARGE")
        assert len(await documents(app, "payments")) == 1
        assert app.state.sandbox.state.ledger.charges_made == 1


async def test_default_max_payment_amount_is_ten_million(client: httpx.AsyncClient) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(client, user, payment_body(merchant.merchant_id, 10_000_001))

    assert_error(response, 422, "AMOUNT_TOO_LARGE")


# --- who may pay, and to whom ---------------------------------------------------------------


async def test_unknown_merchant_is_404_merchant_not_found(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)

    response = await post_payment(client, user, payment_body("mch_01HZZZZZZZZZZZZZZZZZZZZZZZ"))

    assert_error(response, 404, "MERCHANT_NOT_FOUND")
    assert await documents(app, "payments") == []
    assert await documents(app, "daily_spending") == []
    assert app.state.sandbox.state.ledger.charge_attempts == {}


async def test_deactivated_user_with_an_earlier_token_is_403_user_inactive(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    await update_user(client, await admin_headers(client), user.user_id, isActive=False)

    response = await post_payment(client, user, payment_body(merchant.merchant_id))

    assert_error(response, 403, "USER_INACTIVE")
    assert await documents(app, "payments") == []
    assert await documents(app, "daily_spending") == []
    assert app.state.sandbox.state.ledger.charge_attempts == {}


async def test_merchant_api_key_may_not_create_a_payment(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    merchant = await create_merchant(client)

    response = await client.post(
        PAYMENTS,
        json=payment_body(merchant.merchant_id),
        headers=with_idempotency_key(merchant.headers),
    )

    assert_error(response, 403, "FORBIDDEN")
    assert await documents(app, "payments") == []


async def test_create_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)

    response = await client.post(
        PAYMENTS, json=payment_body(merchant.merchant_id), headers=with_idempotency_key({})
    )

    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"] == "Bearer"
