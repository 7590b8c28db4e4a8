"""The worker's part in manual capture: a capture or void whose gateway answer was lost is asked
again and settled once — never captured twice — and an authorization nobody captured in time is
voided (`authorization_expired`), its hold given back and its event sent."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from payments_api.utils.clock import utcnow
from tests.fixtures.payments import (
    assert_money_agrees,
    authorize,
    cancel,
    capture,
    events_of,
    ledger_of,
    lose_gateway_answers,
    open_shop,
    read,
    sandbox_charge,
    sandbox_ledger,
    today_spent,
)
from tests.fixtures.reconciliation import Clock, reconcile_after, reconciler_for, stored_payment


def later(app: FastAPI, by: timedelta) -> Clock:
    return Clock(utcnow() + by)


async def test_a_capture_whose_answer_was_lost_is_202_then_settled_once_by_reconciliation(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 30_000)
    payment_id = payment["paymentId"]
    really = lose_gateway_answers(app, "/capture")

    response = await capture(client, shop.merchant.headers, payment_id, 20_000)

    assert response.status_code == 202, response.text
    assert response.json()["payment"]["status"] == "authorized"
    assert really == [200]  # the gateway did capture
    assert sandbox_charge(app, payment_id).captured_amount == 20_000
    assert await ledger_of(app, payment_id) == []
    # A cancel meanwhile is refused: the capture is under way.
    assert (await cancel(client, shop.user, payment_id)).status_code == 409

    await reconciler_for(app, later(app, reconcile_after(app) + timedelta(seconds=1))).run_once()

    current = await read(client, shop.user.headers, payment_id)
    assert (current["status"], current["capturedAmount"]) == ("completed", 20_000)
    [record] = await ledger_of(app, payment_id)
    assert (record["type"], record["amount"]) == ("payment", 20_000)
    assert sandbox_ledger(app).captures_made == 1
    assert sandbox_ledger(app).capture_requests == 2  # asked again, with the same capture id
    assert len(await events_of(app, payment_id, "payment.completed")) == 1
    assert await today_spent(client, shop) == 20_000
    await assert_money_agrees(app, current)


async def test_a_capture_under_way_is_left_alone_until_it_is_old_enough(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id)
    lose_gateway_answers(app, "/capture")
    assert (await capture(client, shop.merchant.headers, payment["paymentId"])).status_code == 202

    await reconciler_for(app).run_once()

    assert sandbox_ledger(app).capture_requests == 1
    assert (await stored_payment(app, payment["paymentId"]))["status"] == "authorized"


async def test_a_void_whose_answer_was_lost_is_503_then_finished_by_reconciliation(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 15_000)
    payment_id = payment["paymentId"]
    really = lose_gateway_answers(app, "/cancel")

    response = await cancel(client, shop.user, payment_id, "Sold out")

    assert response.status_code == 503, response.text
    assert really == [200]
    assert sandbox_charge(app, payment_id).status == "cancelled"
    refused = await capture(client, shop.merchant.headers, payment_id)
    assert refused.status_code == 409, refused.text

    await reconciler_for(app, later(app, reconcile_after(app) + timedelta(seconds=1))).run_once()

    current = await read(client, shop.user.headers, payment_id)
    assert (current["status"], current["cancelReason"]) == ("cancelled", "Sold out")
    assert await today_spent(client, shop) == 0
    assert len(await events_of(app, payment_id, "payment.cancelled")) == 1
    await assert_money_agrees(app, current)


async def test_a_void_retried_by_its_user_after_a_lost_answer_finishes_it(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id)
    lose_gateway_answers(app, "/cancel")
    assert (await cancel(client, shop.user, payment["paymentId"])).status_code == 503

    again = await cancel(client, shop.user, payment["paymentId"])

    assert again.status_code == 200, again.text
    assert (await read(client, shop.user.headers, payment["paymentId"]))["status"] == "cancelled"


async def test_an_expired_authorization_is_voided_by_the_worker(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 25_000)
    payment_id = payment["paymentId"]
    ttl = timedelta(seconds=app.state.settings.authorization_ttl_seconds)

    await reconciler_for(app, later(app, ttl - timedelta(seconds=5))).run_once()
    assert (await stored_payment(app, payment_id))["status"] == "authorized"

    await reconciler_for(app, later(app, ttl + timedelta(seconds=1))).run_once()

    current = await read(client, shop.user.headers, payment_id)
    assert current["status"] == "cancelled"
    assert current["cancelReason"] == "authorization_expired"
    assert current["capturedAmount"] == 0
    assert sandbox_charge(app, payment_id).status == "cancelled"
    assert await today_spent(client, shop) == 0
    [event] = await events_of(app, payment_id, "payment.cancelled")
    assert event["data"]["payment"]["cancelReason"] == "authorization_expired"
    assert event["data"]["previousStatus"] == "authorized"
    await assert_money_agrees(app, current)
    text = (await client.get("/metrics")).text
    assert 'payment_authorizations_total{outcome="expired"} 1.0' in text


async def test_a_captured_payment_is_never_expired(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id)
    assert (await capture(client, shop.merchant.headers, payment["paymentId"])).status_code == 200
    ttl = timedelta(seconds=app.state.settings.authorization_ttl_seconds)

    await reconciler_for(app, later(app, ttl + timedelta(seconds=1))).run_once()

    assert (await stored_payment(app, payment["paymentId"]))["status"] == "completed"
    assert sandbox_ledger(app).cancel_requests == 0
