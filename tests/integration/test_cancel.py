"""Cancelling a payment: only its owner, only a completed payment with nothing refunded; the
whole charge is returned at the gateway, the daily limit released, the ledger and the outbox
written once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.factories import register_user, update_user
from tests.fixtures.payments import (
    Shop,
    assert_money_agrees,
    cancel,
    events_of,
    ledger_of,
    open_shop,
    open_shop_and_pay,
    pay,
    payment_body,
    post_payment,
    read,
    refund,
    sandbox_charge,
    stats_of,
)


async def today_spent(client: httpx.AsyncClient, shop: Shop) -> int:
    stats = await stats_of(client, shop.user)
    assert stats["remainingToday"] == stats["dailyLimit"] - stats["todaySpent"]
    spent: int = stats["todaySpent"]
    return spent


async def assert_untouched(
    client: httpx.AsyncClient, app: FastAPI, shop: Shop, payment: dict[str, Any]
) -> None:
    """A refused cancel changed nothing: state, ledger, outbox, gateway."""
    current = await read(client, shop.user.headers, payment["paymentId"])
    assert current["status"] == payment["status"]
    assert current["refundedAmount"] == payment["refundedAmount"]
    assert current["cancelReason"] is None
    assert current["cancelledAt"] is None
    assert [r for r in await ledger_of(app, payment["paymentId"]) if r["type"] == "cancel"] == []
    assert await events_of(app, payment["paymentId"], "payment.cancelled") == []
    if payment["status"] != "failed":
        assert sandbox_charge(app, payment["paymentId"]).status == "approved"
        await assert_money_agrees(app, current)


async def test_the_owner_cancels_a_completed_payment(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 25_000)

    response = await cancel(client, shop.user, payment["paymentId"], "Ordered by mistake")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "message": "Payment cancelled successfully",
        "refundInfo": {
            "paymentId": payment["paymentId"],
            "refundAmount": 25_000,
            "refundStatus": "processed",
        },
    }
    cancelled = await read(client, shop.user.headers, payment["paymentId"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelReason"] == "Ordered by mistake"
    assert cancelled["cancelledAt"] is not None
    assert cancelled["cancelledAt"].endswith("Z")
    assert cancelled["cancelledAt"] >= payment["completedAt"]
    assert cancelled["refundedAmount"] == 25_000
    assert cancelled["transactionId"] == payment["transactionId"]


async def test_a_cancel_releases_the_daily_limit_hold(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    assert await today_spent(client, shop) == 0
    kept = await pay(client, shop.user, shop.merchant.merchant_id, 7_000)
    payment = await pay(client, shop.user, shop.merchant.merchant_id, 30_000)
    assert await today_spent(client, shop) == 37_000

    assert (await cancel(client, shop.user, payment["paymentId"])).status_code == 200

    assert await today_spent(client, shop) == kept["amount"]


async def test_the_released_amount_can_be_spent_again(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    await update_user(client, shop.admin, shop.user.user_id, dailyLimit=50_000)
    payment = await pay(client, shop.user, shop.merchant.merchant_id, 50_000)
    over = await post_payment(
        client,
        shop.user,
        payment_body(shop.merchant.merchant_id, 1_000, productName="One more"),
        "over-the-limit",
    )
    assert over.status_code == 422
    assert over.json()["error"] == "DAILY_LIMIT_EXCEEDED"

    assert (await cancel(client, shop.user, payment["paymentId"])).status_code == 200

    again = await pay(client, shop.user, shop.merchant.merchant_id, 50_000)
    assert again["status"] == "completed"


async def test_a_cancel_writes_one_ledger_record_and_one_event(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 18_000)

    assert (await cancel(client, shop.user, payment["paymentId"], "Too late")).status_code == 200

    records = await ledger_of(app, payment["paymentId"])
    assert sorted(r["type"] for r in records) == ["cancel", "payment"]
    cancel_record = next(r for r in records if r["type"] == "cancel")
    assert cancel_record["amount"] == 18_000
    assert cancel_record["userId"] == shop.user.user_id
    assert cancel_record["merchantId"] == shop.merchant.merchant_id
    assert cancel_record["status"] == "succeeded"
    assert cancel_record["_id"].startswith("txn_")
    events = await events_of(app, payment["paymentId"], "payment.cancelled")
    assert len(events) == 1
    assert events[0]["_id"].startswith("evt_")
    assert events[0]["merchantId"] == shop.merchant.merchant_id
    assert events[0]["data"]["payment"]["status"] == "cancelled"
    assert events[0]["data"]["payment"]["cancelReason"] == "Too late"
    assert await events_of(app, payment["paymentId"], "payment.refunded") == []
    await assert_money_agrees(app, await read(client, shop.user.headers, payment["paymentId"]))


async def test_the_gateway_charge_is_cancelled(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop, payment = await open_shop_and_pay(client)
    assert sandbox_charge(app, payment["paymentId"]).status == "approved"

    assert (await cancel(client, shop.user, payment["paymentId"])).status_code == 200

    charge = sandbox_charge(app, payment["paymentId"])
    assert charge.status == "cancelled"
    assert charge.refunds == {}


async def test_cancelling_again_is_a_409_and_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, kept = await open_shop_and_pay(client, 9_000)
    payment = await pay(client, shop.user, shop.merchant.merchant_id, 11_000)
    assert (await cancel(client, shop.user, payment["paymentId"], "First")).status_code == 200

    again = await cancel(client, shop.user, payment["paymentId"], "Second")

    assert again.status_code == 409, again.text
    assert again.json()["error"] == "PAYMENT_NOT_CANCELLABLE"
    current = await read(client, shop.user.headers, payment["paymentId"])
    assert current["status"] == "cancelled"
    assert current["cancelReason"] == "First"
    assert [r["type"] for r in await ledger_of(app, payment["paymentId"])].count("cancel") == 1
    assert len(await events_of(app, payment["paymentId"], "payment.cancelled")) == 1
    assert await today_spent(client, shop) == kept["amount"]  # released once, not twice


async def test_a_partially_refunded_payment_cannot_be_cancelled(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    assert (await refund(client, shop.merchant.headers, payment_id, 2_000)).status_code == 200
    partially = await read(client, shop.user.headers, payment_id)
    assert partially["status"] == "partially_refunded"

    response = await cancel(client, shop.user, payment_id)

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "PAYMENT_NOT_CANCELLABLE"
    await assert_untouched(client, app, shop, partially)
    assert await today_spent(client, shop) == 10_000  # a refund never gives back the limit


async def test_a_refunded_payment_cannot_be_cancelled(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    assert (await refund(client, shop.merchant.headers, payment_id)).status_code == 200
    refunded = await read(client, shop.user.headers, payment_id)
    assert refunded["status"] == "refunded"

    response = await cancel(client, shop.user, payment_id)

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "PAYMENT_NOT_CANCELLABLE"
    await assert_untouched(client, app, shop, refunded)


async def test_a_failed_payment_cannot_be_cancelled(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    failed = await pay(client, shop.user, shop.merchant.merchant_id, 10_402, expect=402)
    assert failed["status"] == "failed"

    response = await cancel(client, shop.user, failed["paymentId"])

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "PAYMENT_NOT_CANCELLABLE"
    await assert_untouched(client, app, shop, failed)
    assert await today_spent(client, shop) == 0


async def test_another_user_gets_a_404(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop, payment = await open_shop_and_pay(client)
    stranger = await register_user(client)

    response = await cancel(client, stranger, payment["paymentId"])

    assert response.status_code == 404, response.text
    assert response.json()["error"] == "PAYMENT_NOT_FOUND"
    await assert_untouched(client, app, shop, payment)


async def test_an_unknown_payment_is_a_404(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)

    response = await cancel(client, shop.user, "pay_01HZZZZZZZZZZZZZZZZZZZZZZZ")

    assert response.status_code == 404
    assert response.json()["error"] == "PAYMENT_NOT_FOUND"


@pytest.mark.parametrize("caller", ["merchant", "admin"])
async def test_only_the_owner_may_cancel(
    client: httpx.AsyncClient, app: FastAPI, caller: str
) -> None:
    shop, payment = await open_shop_and_pay(client)
    headers = shop.merchant.headers if caller == "merchant" else shop.admin

    response = await client.post(
        f"/api/v1/payments/{payment['paymentId']}/cancel",
        json={"reason": "Not mine to cancel"},
        headers=headers,
    )

    assert response.status_code in (403, 404), response.text
    assert response.json()["error"] in ("FORBIDDEN", "PAYMENT_NOT_FOUND")
    await assert_untouched(client, app, shop, payment)


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": 42}])
async def test_a_reason_is_required(
    client: httpx.AsyncClient, app: FastAPI, body: dict[str, Any]
) -> None:
    shop, payment = await open_shop_and_pay(client)

    response = await client.post(
        f"/api/v1/payments/{payment['paymentId']}/cancel", json=body, headers=shop.user.headers
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert "reason" in {detail["field"] for detail in response.json()["details"]}
    await assert_untouched(client, app, shop, payment)
