"""The contract's reconciliation rules for a charge whose answer was lost: "the gateway has no
record" is not "never charged". The reconciler reverses at the gateway before it fails a
payment, settles from the charge when the reversal finds one, waits when the gateway cannot
confirm, and refunds a charge that lands after its payment failed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from payments_api.services.idempotency import key_scope
from tests.fixtures.apps import capture_logs
from tests.fixtures.payments import (
    GatewayGate,
    documents,
    ledger_of,
    open_shop,
    payment_body,
    post_payment,
    read,
    sandbox_ledger,
    stats_of,
    stored_event_types,
)
from tests.fixtures.reconciliation import (
    Clock,
    GatewayCut,
    abandoned_payment,
    answer_instead,
    daily_holds,
    last_change,
    reconcile_after,
    reconciler_for,
    sandbox_post,
    stored_payment,
)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(gateway_timeout_seconds=0.2)


async def late_charge(app: FastAPI, payment_id: str, amount: int) -> httpx.Response:
    """The charge request of `payment_id` reaching the gateway only now."""
    return await sandbox_post(
        app,
        "/v1/charges",
        {"paymentId": payment_id, "amount": amount, "currency": "KRW", "paymentMethod": "card"},
    )


async def test_a_request_cut_off_before_the_gateway_is_reversed_and_replayed_as_not_processed(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    body = payment_body(shop.merchant.merchant_id, 15_000)
    gate = GatewayGate(app)
    request = await gate.catch(post_payment(client, shop.user, body, key="cut-off-1"))
    request.cancel()  # the process died while its charge request was on the way
    with pytest.raises(asyncio.CancelledError):
        await request
    gate.open()
    [pending] = await documents(app, "payments", userId=shop.user.user_id)
    assert pending["status"] == "pending"
    assert (await stats_of(client, shop.user))["todaySpent"] == 15_000

    clock = Clock(await last_change(app, pending["_id"]) + reconcile_after(app))
    assert await reconciler_for(app, clock).run_once() == 1

    failed = await read(client, shop.user.headers, pending["_id"])
    assert (failed["status"], failed["failureCode"]) == ("failed", "NOT_CHARGED")
    assert sandbox_ledger(app).charges[pending["_id"]].status == "reversed"
    assert (await daily_holds(app, shop))["spent"] == 0
    assert await stored_event_types(app, pending["_id"]) == ["payment.failed"]
    assert await ledger_of(app, pending["_id"]) == []

    # The charge request lands after all: the gateway refuses it, nothing is charged.
    landed = await late_charge(app, pending["_id"], 15_000)
    assert landed.status_code == 409, landed.text
    assert landed.json()["status"] == "reversed"
    assert sandbox_ledger(app).charges_made == 0

    # The client retries with its key once the dead request's lock has expired.
    lock = f"idem:lock:{key_scope('pay', shop.user.user_id)}:cut-off-1"
    await app.state.services.redis.delete(lock)
    replay = await post_payment(client, shop.user, body, key="cut-off-1")
    assert replay.status_code == 503, replay.text
    answer = replay.json()
    assert answer["error"] == "PAYMENT_NOT_PROCESSED"
    assert answer["message"]
    assert answer["payment"]["paymentId"] == pending["_id"]
    assert answer["payment"]["failureCode"] == "NOT_CHARGED"
    assert replay.headers["Idempotent-Replayed"] == "true"
    # Nothing was charged, so a new key may try again.
    again = await post_payment(client, shop.user, body, key="cut-off-2")
    assert again.status_code == 201, again.text
    assert sandbox_ledger(app).charges_made == 1


async def test_a_charge_landing_between_the_look_up_and_the_reversal_completes_the_payment(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 12_000)
    gateway = app.state.services.gateway
    look_up = gateway.lookup

    async def look_up_then_the_charge_lands(payment_id: str) -> Any:
        answer = await look_up(payment_id)
        assert answer.outcome == "not_found"
        landed = await late_charge(app, payment_id, payment.amount)
        assert landed.status_code == 200, landed.text
        return answer

    gateway.lookup = look_up_then_the_charge_lands
    clock = Clock(payment.updated_at + reconcile_after(app))
    assert await reconciler_for(app, clock).run_once() == 1

    settled = await read(client, shop.user.headers, payment.id)
    assert settled["status"] == "completed"
    assert settled["transactionId"] == sandbox_ledger(app).charges[payment.id].transaction_id
    assert sandbox_ledger(app).charges[payment.id].status == "approved"
    [record] = await ledger_of(app, payment.id)
    assert (record["type"], record["amount"]) == ("payment", 12_000)
    assert await stored_event_types(app, payment.id) == ["payment.completed"]


async def test_a_gateway_that_cannot_confirm_a_reversal_leaves_the_payment_pending(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 13_000)

    answer_instead(app, "/reverse", 404)  # a gateway with no reversals
    clock = Clock(payment.updated_at + reconcile_after(app))
    await reconciler_for(app, clock).run_once()

    assert (await stored_payment(app, payment.id))["status"] == "pending"
    assert (await daily_holds(app, shop))["spent"] == 13_000
    assert await documents(app, "events", paymentId=payment.id) == []


async def _failed_while_the_gateway_was_cut(
    client: httpx.AsyncClient, app: FastAPI, amount: int
) -> tuple[Any, dict[str, Any]]:
    shop = await open_shop(client)
    cut = GatewayCut(app)
    cut.cut = True
    response = await post_payment(
        client, shop.user, payment_body(shop.merchant.merchant_id, amount)
    )
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "GATEWAY_UNAVAILABLE"
    cut.restore()
    return shop, response.json()["payment"]


async def test_a_charge_that_lands_after_its_payment_failed_is_refunded_once(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    shop, failed = await _failed_while_the_gateway_was_cut(client, app, 21_000)
    payment_id = failed["paymentId"]
    landed = await late_charge(app, payment_id, 21_000)
    assert landed.status_code == 200, landed.text
    assert sandbox_ledger(app).charges[payment_id].status == "approved"

    clock = Clock(await last_change(app, payment_id) + reconcile_after(app) + timedelta(seconds=1))
    with capture_logs(settings) as logs:
        await reconciler_for(app, clock).run_once()
        await reconciler_for(app, clock).run_once()

    # The gateway holds nothing for it any more; the payment stays failed, its money agrees.
    assert sandbox_ledger(app).charges[payment_id].status == "cancelled"
    current = await read(client, shop.user.headers, payment_id)
    assert (current["status"], current["failureCode"]) == ("failed", "GATEWAY_UNAVAILABLE")
    assert await ledger_of(app, payment_id) == []
    assert await stored_event_types(app, payment_id) == ["payment.failed"]
    [failed_event] = await documents(app, "events", paymentId=payment_id)
    assert (failed_event["data"]["sequence"], failed_event["data"]["previousStatus"]) == (
        1,
        "pending",
    )
    stored = await stored_payment(app, payment_id)
    assert stored["eventSequence"] == 1  # the refund of the late charge changed no status
    assert stored["lateChargeRefundedAt"] is not None
    assert "nextRecheckAt" not in stored
    [line] = [r for r in logs.records if r["message"] == "late charge refunded"]
    assert line["business"] is True
    assert (line["paymentId"], line["amount"]) == (payment_id, 21_000)
    metrics = (await client.get("/metrics")).text
    assert "late_charges_refunded_total 1.0" in metrics


async def test_a_failure_is_watched_with_backoff_for_24_hours_then_left_alone(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    _, failed = await _failed_while_the_gateway_was_cut(client, app, 22_000)
    payment_id = failed["paymentId"]
    failed_at = await last_change(app, payment_id)
    first = (await stored_payment(app, payment_id))["nextRecheckAt"]
    assert first == failed_at + reconcile_after(app)

    looked_up: list[str] = []
    gateway = app.state.services.gateway
    look_up = gateway.lookup

    async def counting(payment_id: str) -> Any:
        looked_up.append(payment_id)
        return await look_up(payment_id)

    gateway.lookup = counting
    await reconciler_for(app, Clock(first - timedelta(seconds=1))).run_once()
    assert looked_up == []  # not due yet
    await reconciler_for(app, Clock(first)).run_once()
    assert looked_up == [payment_id]
    second = (await stored_payment(app, payment_id))["nextRecheckAt"]
    assert second - first == 2 * reconcile_after(app)  # backoff

    await reconciler_for(app, Clock(failed_at + timedelta(hours=25))).run_once()
    assert looked_up == [payment_id, payment_id]
    assert "nextRecheckAt" not in await stored_payment(app, payment_id)
    await reconciler_for(app, Clock(failed_at + timedelta(hours=30))).run_once()
    assert looked_up == [payment_id, payment_id]  # no longer watched


async def test_a_declined_payment_is_not_watched(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop = await open_shop(client)
    response = await post_payment(client, shop.user, payment_body(shop.merchant.merchant_id, 5_402))
    assert response.status_code == 402, response.text
    stored = await stored_payment(app, response.json()["payment"]["paymentId"])
    assert "nextRecheckAt" not in stored


async def test_the_sandbox_reverses_only_what_it_has_not_charged(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    reversed_ = await sandbox_post(app, "/v1/charges/pay_never/reverse")
    assert reversed_.status_code == 200
    assert reversed_.json()["status"] == "reversed"
    again = await sandbox_post(app, "/v1/charges/pay_never/reverse")
    assert (again.status_code, again.json()["status"]) == (200, "reversed")
    refused = await late_charge(app, "pay_never", 1_000)
    assert (refused.status_code, refused.json()["error"]) == (409, "CHARGE_REVERSED")

    charged = await late_charge(app, "pay_charged", 1_000)
    assert charged.status_code == 200
    too_late = await sandbox_post(app, "/v1/charges/pay_charged/reverse")
    assert too_late.status_code == 409
    assert json.loads(too_late.text)["status"] == "approved"
    assert sandbox_ledger(app).charges["pay_charged"].status == "approved"


async def test_an_authorization_that_lands_after_its_payment_failed_is_voided(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    cut = GatewayCut(app)
    cut.cut = True
    response = await post_payment(
        client,
        shop.user,
        payment_body(shop.merchant.merchant_id, 22_000, captureMethod="manual"),
    )
    assert response.status_code == 503, response.text
    cut.restore()
    payment_id = response.json()["payment"]["paymentId"]
    landed = await sandbox_post(
        app,
        "/v1/charges",
        {"paymentId": payment_id, "amount": 22_000, "currency": "KRW", "capture": False},
    )
    assert landed.status_code == 200, landed.text
    assert sandbox_ledger(app).charges[payment_id].status == "authorized"

    clock = Clock(await last_change(app, payment_id) + reconcile_after(app) + timedelta(seconds=1))
    await reconciler_for(app, clock).run_once()

    assert sandbox_ledger(app).charges[payment_id].status == "cancelled"
    current = await read(client, shop.user.headers, payment_id)
    assert (current["status"], current["failureCode"]) == ("failed", "GATEWAY_UNAVAILABLE")
    assert (await stored_payment(app, payment_id))["lateChargeRefundedAt"] is not None
    assert (await stats_of(client, shop.user))["todaySpent"] == 0
