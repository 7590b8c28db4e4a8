"""Refunds: by the payment's merchant or an admin, partial or the rest, never beyond what is
left; the ledger, the outbox, the gateway and `refundedAmount` always agree; an optional
Idempotency-Key replays a finished refund."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.factories import create_merchant, register_user
from tests.fixtures.payments import (
    Shop,
    assert_money_agrees,
    cancel,
    documents,
    events_of,
    ledger_net,
    ledger_of,
    open_shop,
    open_shop_and_pay,
    pay,
    read,
    refund,
    sandbox_charge,
    with_idempotency_key,
)

UNKNOWN_PAYMENT_ID = "pay_01HZZZZZZZZZZZZZZZZZZZZZZZ"


async def assert_nothing_refunded(
    client: httpx.AsyncClient, app: FastAPI, shop: Shop, payment: dict[str, Any]
) -> None:
    """A refused refund changed nothing anywhere."""
    current = await read(client, shop.merchant.headers, payment["paymentId"])
    assert current["status"] == payment["status"]
    assert current["refundedAmount"] == payment["refundedAmount"]
    refunds = await documents(app, "refunds", paymentId=payment["paymentId"])
    assert all(r["status"] in ("succeeded", "failed") for r in refunds), refunds
    assert sum(r["amount"] for r in refunds if r["status"] == "succeeded") == (
        payment["refundedAmount"] if payment["status"] != "cancelled" else 0
    )
    if payment["status"] != "failed":
        await assert_money_agrees(app, current)


# --- the merchant refunds -------------------------------------------------------------------


async def test_the_merchant_refunds_part_of_a_payment(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client)

    response = await refund(
        client, shop.merchant.headers, payment["paymentId"], 3_000, "Damaged box"
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Refund processed successfully"
    assert set(body["refund"]) == {
        "refundId",
        "paymentId",
        "amount",
        "reason",
        "status",
        "createdAt",
        "metadata",
    }
    assert body["refund"]["metadata"] == {}
    assert body["refund"]["refundId"].startswith("re_")
    assert body["refund"]["paymentId"] == payment["paymentId"]
    assert body["refund"]["amount"] == 3_000
    assert body["refund"]["reason"] == "Damaged box"
    assert body["refund"]["status"] == "succeeded"
    assert body["refund"]["createdAt"].endswith("Z")
    assert "Idempotent-Replayed" not in response.headers
    current = await read(client, shop.merchant.headers, payment["paymentId"])
    assert current["status"] == "partially_refunded"
    assert current["refundedAmount"] == 3_000
    assert sandbox_charge(app, payment["paymentId"]).refunds == {body["refund"]["refundId"]: 3_000}
    await assert_money_agrees(app, current)


async def test_no_amount_refunds_all_that_is_left(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop, payment = await open_shop_and_pay(client)
    assert (
        await refund(client, shop.merchant.headers, payment["paymentId"], 3_000)
    ).status_code == 200

    response = await refund(client, shop.merchant.headers, payment["paymentId"])

    assert response.status_code == 200, response.text
    assert response.json()["refund"]["amount"] == 7_000
    current = await read(client, shop.user.headers, payment["paymentId"])
    assert current["status"] == "refunded"
    assert current["refundedAmount"] == 10_000
    await assert_money_agrees(app, current)


async def test_no_amount_on_a_fresh_payment_refunds_it_all(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 12_345)

    response = await refund(client, shop.merchant.headers, payment["paymentId"])

    assert response.status_code == 200, response.text
    assert response.json()["refund"]["amount"] == 12_345
    current = await read(client, shop.merchant.headers, payment["paymentId"])
    assert current["status"] == "refunded"
    await assert_money_agrees(app, current)


@pytest.mark.parametrize(
    ("first", "asked", "available"), [(0, 10_001, 10_000), (4_000, 6_001, 6_000)]
)
async def test_more_than_is_left_is_a_422_with_the_available_amount(
    client: httpx.AsyncClient, app: FastAPI, first: int, asked: int, available: int
) -> None:
    shop, payment = await open_shop_and_pay(client)
    if first:
        assert (
            await refund(client, shop.merchant.headers, payment["paymentId"], first)
        ).status_code == 200
    before = await read(client, shop.merchant.headers, payment["paymentId"])

    response = await refund(client, shop.merchant.headers, payment["paymentId"], asked)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "REFUND_EXCEEDS_AVAILABLE"
    assert response.json()["availableAmount"] == available
    await assert_nothing_refunded(client, app, shop, before)
    assert len(sandbox_charge(app, payment["paymentId"]).refunds) == (1 if first else 0)


async def _refunded(client: httpx.AsyncClient, shop: Shop) -> dict[str, Any]:
    payment = await pay(client, shop.user, shop.merchant.merchant_id)
    assert (await refund(client, shop.merchant.headers, payment["paymentId"])).status_code == 200
    return await read(client, shop.user.headers, payment["paymentId"])


async def _failed(client: httpx.AsyncClient, shop: Shop) -> dict[str, Any]:
    return await pay(client, shop.user, shop.merchant.merchant_id, 10_402, expect=402)


async def _cancelled(client: httpx.AsyncClient, shop: Shop) -> dict[str, Any]:
    payment = await pay(client, shop.user, shop.merchant.merchant_id)
    assert (await cancel(client, shop.user, payment["paymentId"])).status_code == 200
    return await read(client, shop.user.headers, payment["paymentId"])


@pytest.mark.parametrize("make", [_refunded, _failed, _cancelled], ids=lambda f: f.__name__[1:])
@pytest.mark.parametrize("amount", [None, 1_000])
async def test_a_payment_that_is_not_refundable_is_a_409(
    client: httpx.AsyncClient, app: FastAPI, make: Any, amount: int | None
) -> None:
    shop = await open_shop(client)
    payment = await make(client, shop)

    response = await refund(client, shop.merchant.headers, payment["paymentId"], amount)

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "PAYMENT_NOT_REFUNDABLE"
    await assert_nothing_refunded(client, app, shop, payment)


async def test_an_admin_may_refund(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop, payment = await open_shop_and_pay(client)

    response = await refund(client, shop.admin, payment["paymentId"], 2_500, "Goodwill")

    assert response.status_code == 200, response.text
    assert response.json()["refund"]["amount"] == 2_500
    current = await read(client, shop.user.headers, payment["paymentId"])
    assert current["refundedAmount"] == 2_500
    await assert_money_agrees(app, current)


async def test_the_owning_user_may_not_refund(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop, payment = await open_shop_and_pay(client)

    response = await refund(client, shop.user.headers, payment["paymentId"], 1_000)

    assert response.status_code == 403, response.text
    assert response.json()["error"] == "FORBIDDEN"
    await assert_nothing_refunded(client, app, shop, payment)


async def test_another_merchant_or_user_gets_a_404(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop, payment = await open_shop_and_pay(client)
    rival = await create_merchant(client, shop.admin)
    stranger = await register_user(client)

    for headers in (rival.headers, stranger.headers):
        response = await refund(client, headers, payment["paymentId"], 1_000)
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "PAYMENT_NOT_FOUND"
    unknown = await refund(client, shop.merchant.headers, UNKNOWN_PAYMENT_ID, 1_000)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "PAYMENT_NOT_FOUND"
    await assert_nothing_refunded(client, app, shop, payment)


async def test_a_refund_needs_credentials(client: httpx.AsyncClient) -> None:
    _, payment = await open_shop_and_pay(client)

    response = await client.post(
        f"/api/v1/payments/{payment['paymentId']}/refund", json={"reason": "no one"}
    )

    assert response.status_code == 401


# --- listing refunds ------------------------------------------------------------------------


async def test_the_refunds_are_listed_for_the_payments_readers(client: httpx.AsyncClient) -> None:
    shop, payment = await open_shop_and_pay(client)
    made = []
    for amount, reason in ((1_000, "First"), (2_000, "Second")):
        response = await refund(client, shop.merchant.headers, payment["paymentId"], amount, reason)
        assert response.status_code == 200, response.text
        made.append(response.json()["refund"])

    for headers in (shop.user.headers, shop.merchant.headers, shop.admin):
        response = await client.get(
            f"/api/v1/payments/{payment['paymentId']}/refunds", headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True, "refunds": made}


async def test_a_payment_without_refunds_lists_none(client: httpx.AsyncClient) -> None:
    shop, payment = await open_shop_and_pay(client)

    response = await client.get(
        f"/api/v1/payments/{payment['paymentId']}/refunds", headers=shop.user.headers
    )

    assert response.status_code == 200
    assert response.json() == {"success": True, "refunds": []}


async def test_others_cannot_list_the_refunds(client: httpx.AsyncClient) -> None:
    shop, payment = await open_shop_and_pay(client)
    assert (
        await refund(client, shop.merchant.headers, payment["paymentId"], 1_000)
    ).status_code == 200
    rival = await create_merchant(client, shop.admin)
    stranger = await register_user(client)

    for headers in (rival.headers, stranger.headers):
        response = await client.get(
            f"/api/v1/payments/{payment['paymentId']}/refunds", headers=headers
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "PAYMENT_NOT_FOUND"
        assert "refunds" not in response.json()
    unknown = await client.get(
        f"/api/v1/payments/{UNKNOWN_PAYMENT_ID}/refunds", headers=shop.merchant.headers
    )
    assert unknown.status_code == 404


# --- ledger and events ----------------------------------------------------------------------


async def test_the_ledger_agrees_after_every_refund(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 20_000)
    payment_id = payment["paymentId"]
    assert await ledger_net(app, payment_id) == 20_000

    refunded = 0
    for amount in (1_000, 2_500, None):
        response = await refund(client, shop.merchant.headers, payment_id, amount)
        assert response.status_code == 200, response.text
        refunded += response.json()["refund"]["amount"]
        current = await read(client, shop.merchant.headers, payment_id)
        assert current["refundedAmount"] == refunded
        assert await ledger_net(app, payment_id) == 20_000 - refunded
        await assert_money_agrees(app, current)

    records = await ledger_of(app, payment_id)
    assert sorted(r["type"] for r in records) == ["payment", "refund", "refund", "refund"]
    assert sorted(r["amount"] for r in records if r["type"] == "refund") == [1_000, 2_500, 16_500]
    assert all(r["status"] == "succeeded" for r in records)
    assert all(r["paymentId"] == payment_id for r in records)


async def test_one_refunded_event_per_refund(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop, payment = await open_shop_and_pay(client)
    payment_id = payment["paymentId"]

    for amount in (1_000, 2_000, 3_000):
        assert (await refund(client, shop.merchant.headers, payment_id, amount)).status_code == 200

    events = await events_of(app, payment_id, "payment.refunded")
    assert len(events) == 3
    assert len({event["_id"] for event in events}) == 3
    assert sorted(event["data"]["payment"]["refundedAmount"] for event in events) == [
        1_000,
        3_000,
        6_000,
    ]
    assert all(event["merchantId"] == shop.merchant.merchant_id for event in events)
    assert await events_of(app, payment_id, "payment.cancelled") == []


# --- idempotency ----------------------------------------------------------------------------


async def _keyed_refund(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    payment_id: str,
    key: str,
    body: dict[str, Any],
) -> httpx.Response:
    return await client.post(
        f"/api/v1/payments/{payment_id}/refund",
        json=body,
        headers=with_idempotency_key(headers, key),
    )


@pytest.mark.parametrize(
    "body", [{"amount": 3_000, "reason": "Late delivery"}, {"reason": "Everything back"}]
)
async def test_the_same_key_and_body_replay_the_same_refund(
    client: httpx.AsyncClient, app: FastAPI, body: dict[str, Any]
) -> None:
    shop, payment = await open_shop_and_pay(client)
    payment_id = payment["paymentId"]

    first = await _keyed_refund(client, shop.merchant.headers, payment_id, "refund-key-1", body)
    again = await _keyed_refund(client, shop.merchant.headers, payment_id, "refund-key-1", body)

    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["refund"] == first.json()["refund"]
    refund_id = first.json()["refund"]["refundId"]
    amount = first.json()["refund"]["amount"]
    assert sandbox_charge(app, payment_id).refunds == {refund_id: amount}
    assert [r["_id"] for r in await documents(app, "refunds", paymentId=payment_id)] == [refund_id]
    current = await read(client, shop.merchant.headers, payment_id)
    assert current["refundedAmount"] == amount
    assert len(await events_of(app, payment_id, "payment.refunded")) == 1
    await assert_money_agrees(app, current)


async def test_the_same_key_with_another_body_is_a_422(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client)
    payment_id = payment["paymentId"]
    body = {"amount": 3_000, "reason": "Late delivery"}
    first = await _keyed_refund(client, shop.merchant.headers, payment_id, "refund-key-2", body)
    assert first.status_code == 200, first.text

    changed = [
        {"amount": 3_001, "reason": "Late delivery"},
        {"amount": 3_000, "reason": "Another reason"},
        {"reason": "Late delivery"},
    ]
    for other in changed:
        response = await _keyed_refund(
            client, shop.merchant.headers, payment_id, "refund-key-2", other
        )
        assert response.status_code == 422, (other, response.text)
        assert response.json()["error"] == "IDEMPOTENCY_KEY_REUSED"

    current = await read(client, shop.merchant.headers, payment_id)
    assert current["refundedAmount"] == 3_000
    assert len(sandbox_charge(app, payment_id).refunds) == 1
    await assert_money_agrees(app, current)


async def test_the_same_key_on_another_payment_is_a_422(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client)
    second = await pay(client, shop.user, shop.merchant.merchant_id)
    body = {"amount": 3_000, "reason": "Late delivery"}
    first = await _keyed_refund(
        client, shop.merchant.headers, payment["paymentId"], "refund-key-3", body
    )
    assert first.status_code == 200, first.text

    response = await _keyed_refund(
        client, shop.merchant.headers, second["paymentId"], "refund-key-3", body
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "IDEMPOTENCY_KEY_REUSED"
    assert sandbox_charge(app, second["paymentId"]).refunds == {}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"amount": 3_000, "reason": "Late delivery"}, id="partial"),
        pytest.param({"reason": "Everything back"}, id="full"),
    ],
)
async def test_a_refund_is_replayed_even_after_redis_forgets_the_key(
    client: httpx.AsyncClient, app: FastAPI, body: dict[str, Any]
) -> None:
    """The refunds collection is the last line of defence when Redis forgets a key, as the
    payments collection is for payments: the replay still answers the refund it made."""
    shop, payment = await open_shop_and_pay(client)
    payment_id = payment["paymentId"]
    first = await _keyed_refund(client, shop.merchant.headers, payment_id, "remembered", body)
    assert first.status_code == 200, first.text
    await app.state.services.redis.flushdb()  # Redis restarted without persistence

    again = await _keyed_refund(client, shop.merchant.headers, payment_id, "remembered", body)

    assert again.status_code == 200, again.text
    assert again.json()["refund"] == first.json()["refund"]
    assert len(sandbox_charge(app, payment_id).refunds) == 1
    current = await read(client, shop.merchant.headers, payment_id)
    assert current["refundedAmount"] == first.json()["refund"]["amount"]
    await assert_money_agrees(app, current)


async def test_a_refund_replayed_from_the_database_says_it_was_replayed(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client)
    body = {"amount": 3_000, "reason": "Late delivery"}
    first = await _keyed_refund(
        client, shop.merchant.headers, payment["paymentId"], "remembered", body
    )
    assert first.status_code == 200, first.text
    await app.state.services.redis.flushdb()

    again = await _keyed_refund(
        client, shop.merchant.headers, payment["paymentId"], "remembered", body
    )

    assert again.status_code == 200, again.text
    assert again.json()["refund"]["refundId"] == first.json()["refund"]["refundId"]
    assert again.headers.get("Idempotent-Replayed") == "true"


async def test_a_key_with_whitespace_around_it_replays_the_same_refund(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """RFC 9110: the whitespace around a field value is not part of it."""
    shop, payment = await open_shop_and_pay(client)
    payment_id = payment["paymentId"]
    body = {"amount": 2_000, "reason": "One item back"}

    first = await _keyed_refund(client, shop.merchant.headers, payment_id, "refund-7", body)
    again = await _keyed_refund(client, shop.merchant.headers, payment_id, "\trefund-7  ", body)

    assert first.status_code == 200, first.text
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["refund"] == first.json()["refund"]
    assert len(await documents(app, "refunds", paymentId=payment_id)) == 1
    current = await read(client, shop.merchant.headers, payment_id)
    assert current["refundedAmount"] == 2_000
    await assert_money_agrees(app, current)


async def test_a_malformed_idempotency_key_is_a_400(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client)

    response = await _keyed_refund(
        client, shop.merchant.headers, payment["paymentId"], "x" * 256, {"reason": "too long"}
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "INVALID_IDEMPOTENCY_KEY"
    await assert_nothing_refunded(client, app, shop, payment)


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount", [1000.0, 1000.5, "1000", 0, -1000, True, 10**15 + 1, 2**63, 10**30], ids=repr
)
async def test_an_amount_that_is_not_a_positive_integer_is_a_422(
    client: httpx.AsyncClient, app: FastAPI, amount: Any
) -> None:
    shop, payment = await open_shop_and_pay(client)

    response = await refund(client, shop.merchant.headers, payment["paymentId"], amount)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert "amount" in {detail["field"] for detail in response.json()["details"]}
    await assert_nothing_refunded(client, app, shop, payment)


@pytest.mark.parametrize("body", [{"amount": 1_000}, {"amount": 1_000, "reason": ""}])
async def test_a_reason_is_required(
    client: httpx.AsyncClient, app: FastAPI, body: dict[str, Any]
) -> None:
    shop, payment = await open_shop_and_pay(client)

    response = await client.post(
        f"/api/v1/payments/{payment['paymentId']}/refund", json=body, headers=shop.merchant.headers
    )

    assert response.status_code == 422, response.text
    assert "reason" in {detail["field"] for detail in response.json()["details"]}
    await assert_nothing_refunded(client, app, shop, payment)
