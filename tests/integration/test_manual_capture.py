"""Authorize now, capture later, through the API: the authorization holds the amount at the gateway
and on the daily limit and charges nothing; a capture takes all or part of it once (the rest let
go at once), a cancel voids it, and the ledger, the events, the stats and the gateway agree."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from payments_api.utils.clock import utcnow
from tests.fixtures.apps import running
from tests.fixtures.factories import create_merchant
from tests.fixtures.payments import (
    assert_money_agrees,
    authorize,
    cancel,
    capture,
    events_of,
    ledger_of,
    open_shop,
    pay,
    payment_body,
    post_payment,
    read,
    refund,
    refuse_gateway_connections,
    sandbox_charge,
    sandbox_ledger,
    stats_of,
    today_spent,
)
from tests.fixtures.reconciliation import Clock, reconcile_after, reconciler_for
from tests.fixtures.servers import free_port


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def event_types(app: FastAPI, payment_id: str) -> list[tuple[int, str, str]]:
    """(sequence, type, previousStatus) of the payment's published events, in order."""
    found = []
    for kind in ("authorized", "completed", "cancelled", "refunded", "failed"):
        for event in await events_of(app, payment_id, f"payment.{kind}"):
            if event["status"] != "draft":
                data = event["data"]
                found.append((data["sequence"], event["type"], data["previousStatus"]))
    return sorted(found)


# --- authorize ------------------------------------------------------------------------------


async def test_a_manual_payment_is_authorized_held_and_charges_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    before = utcnow()

    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 30_000)

    assert payment["captureMethod"] == "manual"
    assert payment["capturedAmount"] == 0
    assert payment["completedAt"] is None
    ttl = timedelta(seconds=app.state.settings.authorization_ttl_seconds)
    assert ttl == timedelta(days=7)
    expires = _instant(payment["authorizationExpiresAt"])
    assert before + ttl - timedelta(seconds=1) <= expires <= utcnow() + ttl
    assert await today_spent(client, shop) == 30_000
    charge = sandbox_charge(app, payment["paymentId"])
    assert (charge.status, charge.captured_amount) == ("authorized", 0)
    assert sandbox_ledger(app).charges_made == 0
    assert await ledger_of(app, payment["paymentId"]) == []
    assert await event_types(app, payment["paymentId"]) == [(1, "payment.authorized", "pending")]
    assert (await stats_of(client, shop.user))["totalTransactions"] == 0


async def test_an_automatic_payment_shows_what_it_captured(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)

    payment = await pay(client, shop.user, shop.merchant.merchant_id, 12_000)

    assert payment["captureMethod"] == "automatic"
    assert payment["capturedAmount"] == 12_000
    assert payment["authorizationExpiresAt"] is None


async def test_an_unknown_capture_method_is_a_validation_error(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)

    response = await post_payment(
        client, shop.user, payment_body(shop.merchant.merchant_id, captureMethod="later")
    )

    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["field"] == "captureMethod"


async def test_a_declined_authorization_is_402_and_gives_its_hold_back(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)

    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 20_402, expect=402)

    assert payment["status"] == "failed"
    assert payment["failureCode"] == "CARD_DECLINED"
    assert payment["capturedAmount"] == 0
    assert await today_spent(client, shop) == 0
    assert await ledger_of(app, payment["paymentId"]) == []


async def test_an_authorization_whose_answer_is_late_is_pending_then_authorized_by_reconciliation(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(gateway_timeout_seconds=0.3)) as (app, client):
        shop = await open_shop(client)

        payment = await authorize(client, shop.user, shop.merchant.merchant_id, 20_408, expect=202)
        assert payment["status"] == "pending"
        assert sandbox_charge(app, payment["paymentId"]).status == "authorized"

        clock = Clock(utcnow() + reconcile_after(app) + timedelta(seconds=1))
        await reconciler_for(app, clock).run_once()

        settled = await read(client, shop.user.headers, payment["paymentId"])
        assert settled["status"] == "authorized"
        assert settled["authorizationExpiresAt"] is not None
        assert await today_spent(client, shop) == 20_408
        assert await ledger_of(app, payment["paymentId"]) == []
        assert [t for _, t, _ in await event_types(app, payment["paymentId"])] == [
            "payment.authorized"
        ]


async def test_an_authorization_with_the_gateway_unreachable_is_503_and_holds_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    async with running(make_settings(gateway_url=nobody_listens)) as (_app, client):
        shop = await open_shop(client)

        payment = await authorize(client, shop.user, shop.merchant.merchant_id, expect=503)

        assert payment["status"] == "failed"
        assert await today_spent(client, shop) == 0


# --- capture --------------------------------------------------------------------------------


async def test_a_partial_capture_completes_and_lets_the_rest_of_the_hold_go(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 30_000)
    payment_id = payment["paymentId"]

    response = await capture(client, shop.merchant.headers, payment_id, 18_000)

    assert response.status_code == 200, response.text
    captured = response.json()["payment"]
    assert response.json()["success"] is True
    assert captured["status"] == "completed"
    assert captured["capturedAmount"] == 18_000
    assert captured["amount"] == 30_000
    assert captured["completedAt"] is not None
    assert await today_spent(client, shop) == 18_000
    [record] = await ledger_of(app, payment_id)
    assert (record["type"], record["amount"]) == ("payment", 18_000)
    charge = sandbox_charge(app, payment_id)
    assert (charge.status, charge.amount, charge.captured_amount) == ("approved", 18_000, 18_000)
    assert sandbox_ledger(app).captures_made == 1
    assert await event_types(app, payment_id) == [
        (1, "payment.authorized", "pending"),
        (2, "payment.completed", "authorized"),
    ]
    stats = await stats_of(client, shop.user)
    assert (stats["totalTransactions"], stats["totalAmount"]) == (1, 18_000)
    assert await read(client, shop.user.headers, payment_id) == captured
    await assert_money_agrees(app, captured)


async def test_a_capture_without_a_body_takes_the_whole_authorization(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 25_000)

    response = await client.post(
        f"/api/v1/payments/{payment['paymentId']}/capture", headers=shop.merchant.headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["payment"]["capturedAmount"] == 25_000
    assert await today_spent(client, shop) == 25_000
    await assert_money_agrees(app, response.json()["payment"])


async def test_a_capture_above_the_authorized_amount_is_422_and_changes_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 10_000)

    response = await capture(client, shop.merchant.headers, payment["paymentId"], 10_001)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "CAPTURE_EXCEEDS_AUTHORIZED"
    assert response.json()["authorizedAmount"] == 10_000
    assert sandbox_ledger(app).capture_requests == 0
    assert (await read(client, shop.user.headers, payment["paymentId"]))["status"] == "authorized"


@pytest.mark.parametrize("amount", [0, -5, 1.5, "100", True])
async def test_a_capture_amount_that_is_not_a_positive_integer_is_a_validation_error(
    client: httpx.AsyncClient, amount: object
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id)

    response = await capture(client, shop.merchant.headers, payment["paymentId"], amount)

    assert response.status_code == 422, response.text
    assert response.json()["details"][0]["field"] == "amount"


async def test_a_second_capture_is_409_and_the_gateway_captured_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 10_000)
    first = await capture(client, shop.merchant.headers, payment["paymentId"], 4_000)
    assert first.status_code == 200, first.text

    again = await capture(client, shop.merchant.headers, payment["paymentId"], 4_000)

    assert again.status_code == 409, again.text
    assert again.json()["error"] == "PAYMENT_NOT_CAPTURABLE"
    assert sandbox_ledger(app).capture_requests == 1
    assert len(await ledger_of(app, payment["paymentId"])) == 1


async def test_an_automatic_payment_is_not_capturable(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    payment = await pay(client, shop.user, shop.merchant.merchant_id)

    response = await capture(client, shop.merchant.headers, payment["paymentId"])

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "PAYMENT_NOT_CAPTURABLE"


async def test_the_user_may_not_capture_and_another_merchant_is_told_it_does_not_exist(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    other = await create_merchant(client, shop.admin)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id)

    by_user = await capture(client, shop.user.headers, payment["paymentId"])
    by_stranger = await capture(client, other.headers, payment["paymentId"])

    assert by_user.status_code == 403, by_user.text
    assert by_user.json()["error"] == "FORBIDDEN"
    assert by_stranger.status_code == 404, by_stranger.text
    assert by_stranger.json()["error"] == "PAYMENT_NOT_FOUND"
    assert sandbox_ledger(app).capture_requests == 0


async def test_an_admin_captures(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 10_000)

    response = await capture(client, shop.admin, payment["paymentId"], 7_000)

    assert response.status_code == 200, response.text
    assert response.json()["payment"]["capturedAmount"] == 7_000


async def test_a_capture_replayed_by_its_key_answers_the_same_capture(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 10_000)
    key = "capture-order-77"

    first = await capture(client, shop.merchant.headers, payment["paymentId"], 6_000, key=key)
    again = await capture(client, shop.merchant.headers, payment["paymentId"], 6_000, key=key)
    other_body = await capture(client, shop.merchant.headers, payment["paymentId"], 5_000, key=key)

    assert first.status_code == 200, first.text
    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.json()["payment"]["capturedAmount"] == 6_000
    assert other_body.status_code == 422, other_body.text
    assert other_body.json()["error"] == "IDEMPOTENCY_KEY_REUSED"
    assert sandbox_ledger(app).capture_requests == 1


async def test_a_capture_with_the_gateway_unreachable_is_503_and_can_be_tried_again(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 10_000)
    refuse_gateway_connections(app, "/capture")

    response = await capture(client, shop.merchant.headers, payment["paymentId"])

    assert response.status_code == 503, response.text
    assert response.json()["error"] == "GATEWAY_UNAVAILABLE"
    current = await read(client, shop.user.headers, payment["paymentId"])
    assert (current["status"], current["capturedAmount"]) == ("authorized", 0)
    assert sandbox_charge(app, payment["paymentId"]).status == "authorized"
    # Nothing is under way any more: a void goes through.
    voided = await cancel(client, shop.user, payment["paymentId"])
    assert voided.status_code == 200, voided.text


async def test_a_capture_after_the_authorization_expired_is_409(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(authorization_ttl_seconds=1)) as (app, client):
        shop = await open_shop(client)
        payment = await authorize(client, shop.user, shop.merchant.merchant_id)
        await _wait_past(payment["authorizationExpiresAt"])

        response = await capture(client, shop.merchant.headers, payment["paymentId"])

        assert response.status_code == 409, response.text
        assert response.json()["error"] == "PAYMENT_NOT_CAPTURABLE"
        assert sandbox_ledger(app).capture_requests == 0


async def _wait_past(instant: str) -> None:
    for _ in range(50):
        if utcnow() > _instant(instant):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{instant} never passed")


# --- void -----------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["user", "merchant", "admin"])
async def test_a_cancel_of_an_authorization_voids_it(
    client: httpx.AsyncClient, app: FastAPI, who: str
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 40_000)
    headers = {
        "user": shop.user.headers,
        "merchant": shop.merchant.headers,
        "admin": shop.admin,
    }[who]

    response = await client.post(
        f"/api/v1/payments/{payment['paymentId']}/cancel",
        json={"reason": "Out of stock"},
        headers=headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["refundInfo"] == {
        "paymentId": payment["paymentId"],
        "refundAmount": 0,
        "refundStatus": "processed",
    }
    current = await read(client, shop.user.headers, payment["paymentId"])
    assert current["status"] == "cancelled"
    assert current["cancelReason"] == "Out of stock"
    assert current["capturedAmount"] == 0
    assert current["cancelledAt"] is not None
    assert await today_spent(client, shop) == 0
    assert await ledger_of(app, payment["paymentId"]) == []
    assert sandbox_charge(app, payment["paymentId"]).status == "cancelled"
    assert await event_types(app, payment["paymentId"]) == [
        (1, "payment.authorized", "pending"),
        (2, "payment.cancelled", "authorized"),
    ]
    await assert_money_agrees(app, current)
    after = await capture(client, shop.merchant.headers, payment["paymentId"])
    assert after.status_code == 409, after.text


async def test_another_merchant_cannot_void_an_authorization(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    other = await create_merchant(client, shop.admin)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id)

    response = await client.post(
        f"/api/v1/payments/{payment['paymentId']}/cancel",
        json={"reason": "Not mine"},
        headers=other.headers,
    )

    assert response.status_code == 404, response.text
    assert (await read(client, shop.user.headers, payment["paymentId"]))["status"] == "authorized"


async def test_the_merchant_may_not_cancel_a_charged_payment(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    payment = await pay(client, shop.user, shop.merchant.merchant_id)

    response = await client.post(
        f"/api/v1/payments/{payment['paymentId']}/cancel",
        json={"reason": "Merchant's whim"},
        headers=shop.merchant.headers,
    )

    assert response.status_code == 403, response.text
    assert (await read(client, shop.user.headers, payment["paymentId"]))["status"] == "completed"


# --- after a capture ------------------------------------------------------------------------


async def test_refunds_go_up_to_the_captured_amount(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 30_000)
    payment_id = payment["paymentId"]
    assert (await capture(client, shop.merchant.headers, payment_id, 20_000)).status_code == 200

    too_much = await refund(client, shop.merchant.headers, payment_id, 20_001)
    part = await refund(client, shop.merchant.headers, payment_id, 5_000)
    rest = await refund(client, shop.merchant.headers, payment_id)

    assert too_much.status_code == 422, too_much.text
    assert too_much.json()["availableAmount"] == 20_000
    assert part.status_code == 200, part.text
    assert rest.status_code == 200, rest.text
    assert rest.json()["refund"]["amount"] == 15_000
    current = await read(client, shop.user.headers, payment_id)
    assert (current["status"], current["refundedAmount"]) == ("refunded", 20_000)
    await assert_money_agrees(app, current)


async def test_an_authorization_is_not_refundable(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id)

    response = await refund(client, shop.merchant.headers, payment["paymentId"], 1_000)

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "PAYMENT_NOT_REFUNDABLE"
    assert sandbox_ledger(app).refund_requests == 0


async def test_a_captured_payment_cancelled_by_its_user_returns_what_was_captured(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 30_000)
    payment_id = payment["paymentId"]
    assert (await capture(client, shop.merchant.headers, payment_id, 12_000)).status_code == 200

    response = await cancel(client, shop.user, payment_id)

    assert response.status_code == 200, response.text
    assert response.json()["refundInfo"]["refundAmount"] == 12_000
    assert await today_spent(client, shop) == 0
    current = await read(client, shop.user.headers, payment_id)
    assert (current["status"], current["refundedAmount"]) == ("cancelled", 12_000)
    await assert_money_agrees(app, current)


async def test_metrics_count_authorizations_captures_and_voids(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    captured = await authorize(client, shop.user, shop.merchant.merchant_id)
    voided = await authorize(client, shop.user, shop.merchant.merchant_id)
    assert (await capture(client, shop.merchant.headers, captured["paymentId"])).status_code == 200
    assert (await cancel(client, shop.user, voided["paymentId"])).status_code == 200

    text = (await client.get("/metrics")).text

    assert 'payment_authorizations_total{outcome="authorized"} 2.0' in text
    assert 'payment_authorizations_total{outcome="captured"} 1.0' in text
    assert 'payment_authorizations_total{outcome="voided"} 1.0' in text


async def test_the_histories_filter_authorized_payments(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    held = await authorize(client, shop.user, shop.merchant.merchant_id)
    await pay(client, shop.user, shop.merchant.merchant_id)

    mine = await client.get("/api/v1/payments?status=authorized", headers=shop.user.headers)
    theirs = await client.get(
        "/api/v1/merchants/me/payments?status=authorized", headers=shop.merchant.headers
    )

    for answer in (mine, theirs):
        assert answer.status_code == 200, answer.text
        assert [p["paymentId"] for p in answer.json()["payments"]] == [held["paymentId"]]
