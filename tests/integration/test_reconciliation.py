"""Reconciliation with an injected clock: payments left `pending` (a lost gateway answer, a
process that died mid-way) and refunds or cancels left half-done are settled from what the
gateway says, through the same code as the request flow, once and only once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from payments_api.models.refund import Refund
from payments_api.utils import ids, workers
from payments_api.utils.clock import utcnow
from tests.fixtures.payments import (
    GatewayGate,
    _wrap_sandbox,
    assert_money_agrees,
    cancel,
    collection,
    documents,
    events_of,
    ledger_of,
    open_shop,
    open_shop_and_pay,
    pay,
    read,
    refund,
    sandbox_ledger,
    slow_gateway,
    stats_of,
    stored_event_types,
)
from tests.fixtures.races import killed_once_there
from tests.fixtures.reconciliation import (
    Clock,
    abandoned_payment,
    charged_at_gateway,
    daily_holds,
    last_change,
    reconcile_after,
    reconciler_for,
    stored_payment,
)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """A short gateway timeout, so an amount ending 408 leaves its payment pending quickly."""
    return make_settings(gateway_timeout_seconds=0.2)


def charge_lookups(app: FastAPI) -> list[str]:
    """Count the sandbox's `GET /v1/charges/{paymentId}` calls (the reconciler's question)."""
    seen: list[str] = []

    def wrapper(inner: Any) -> Any:
        async def counting(scope: Any, receive: Any, send: Any) -> None:
            if (
                scope["type"] == "http"
                and scope["method"] == "GET"
                and re.fullmatch(r"/v1/charges/[^/]+", scope["path"])
            ):
                seen.append(scope["path"].rsplit("/", 1)[1])
            await inner(scope, receive, send)

        return counting

    _wrap_sandbox(app, wrapper)
    return seen


class LostAnswers:
    """While `on`, refund and cancel calls to the sandbox end in a 502: with `reached` the
    sandbox did the work and its answer was lost on the way back, else the call never got
    there. Either way the caller cannot know, and must leave the reservation for
    reconciliation."""

    def __init__(self, app: FastAPI, *, reached: bool) -> None:
        self.on = True

        def wrapper(inner: Any) -> Any:
            async def lossy(scope: Any, receive: Any, send: Any) -> None:
                path = str(scope.get("path", ""))
                if (
                    self.on
                    and scope["type"] == "http"
                    and scope["method"] == "POST"
                    and (path.endswith("/refunds") or path.endswith("/cancel"))
                ):
                    if reached:

                        async def swallow(message: Any) -> None:
                            return None

                        await inner(scope, receive, swallow)
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 502,
                            "headers": [(b"content-type", b"application/json")],
                        }
                    )
                    await send({"type": "http.response.body", "body": b'{"error":"BAD_GATEWAY"}'})
                    return
                await inner(scope, receive, send)

            return lossy

        _wrap_sandbox(app, wrapper)


# --- pending payments ------------------------------------------------------------------------


async def test_timed_out_payment_is_completed_only_after_the_reconcile_delay(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    pending = await pay(client, shop.user, shop.merchant.merchant_id, 10_408, expect=202)
    payment_id = pending["paymentId"]
    assert pending["status"] == "pending"
    changed = await last_change(app, payment_id)
    clock = Clock(changed + reconcile_after(app) - timedelta(seconds=1))
    reconciler = reconciler_for(app, clock)

    assert await reconciler.run_once() == 0
    assert (await stored_payment(app, payment_id))["status"] == "pending"
    assert (await read(client, shop.user.headers, payment_id))["status"] == "pending"
    assert await ledger_of(app, payment_id) == []
    assert await documents(app, "events", paymentId=payment_id) == []

    clock.now = changed + reconcile_after(app)
    assert await reconciler.run_once() == 1

    settled = await read(client, shop.user.headers, payment_id)
    assert settled["status"] == "completed"
    assert settled["transactionId"] == sandbox_ledger(app).charges[payment_id].transaction_id
    assert settled["completedAt"] is not None
    [record] = await ledger_of(app, payment_id)
    assert record["type"] == "payment"
    assert record["amount"] == 10_408
    events = await documents(app, "events", paymentId=payment_id)
    assert [e["type"] for e in events] == ["payment.completed"]
    assert events[0]["data"]["payment"]["status"] == "completed"
    assert sandbox_ledger(app).charges_made == 1  # asked, never charged again
    totals = await stats_of(client, shop.user)
    assert totals["totalTransactions"] == 1
    assert totals["totalAmount"] == 10_408
    assert totals["todaySpent"] == 10_408
    await assert_money_agrees(app, settled)


async def test_payment_approved_before_the_process_died_is_completed(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 12_000)
    charged = await charged_at_gateway(app, payment)
    assert charged.outcome == "approved"

    reconciler = reconciler_for(app, Clock(payment.updated_at + reconcile_after(app)))
    assert await reconciler.run_once() == 1

    settled = await read(client, shop.user.headers, payment.id)
    assert settled["status"] == "completed"
    assert settled["transactionId"] == charged.transaction_id
    [record] = await ledger_of(app, payment.id)
    assert (record["type"], record["amount"]) == ("payment", 12_000)
    assert len(await events_of(app, payment.id, "payment.completed")) == 1
    assert len(await documents(app, "events", paymentId=payment.id)) == 1
    totals = await stats_of(client, shop.user)
    assert (totals["totalTransactions"], totals["totalAmount"]) == (1, 12_000)
    assert totals["todaySpent"] == 12_000
    assert sandbox_ledger(app).charges_made == 1
    await assert_money_agrees(app, settled)


async def test_payment_the_gateway_never_charged_fails_and_releases_its_hold(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 15_000)
    assert (await stats_of(client, shop.user))["todaySpent"] == 15_000

    reconciler = reconciler_for(app, Clock(payment.updated_at + reconcile_after(app)))
    assert await reconciler.run_once() == 1

    settled = await read(client, shop.user.headers, payment.id)
    assert settled["status"] == "failed"
    # Only a confirmed reversal fails it, and then with the contract's code: never a decline.
    assert settled["failureCode"] == "NOT_CHARGED"
    assert settled["failureMessage"]
    assert await ledger_of(app, payment.id) == []
    [event] = await documents(app, "events", paymentId=payment.id)
    assert event["type"] == "payment.failed"
    assert event["data"]["payment"]["status"] == "failed"
    assert event["data"]["payment"]["failureCode"] == "NOT_CHARGED"
    holds = await daily_holds(app, shop)
    assert holds["spent"] == 0
    assert payment.id not in holds["holds"]
    totals = await stats_of(client, shop.user)
    assert (totals["todaySpent"], totals["totalTransactions"]) == (0, 0)
    # Reconciliation asks, then reverses (so the charge can never land); it never charges.
    assert sandbox_ledger(app).charges[payment.id].status == "reversed"
    assert sandbox_ledger(app).charges_made == 0
    assert payment.id not in sandbox_ledger(app).charge_attempts


async def test_payment_the_gateway_declined_fails(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 10_402)
    declined = await charged_at_gateway(app, payment)
    assert declined.outcome == "declined"

    reconciler = reconciler_for(app, Clock(payment.updated_at + reconcile_after(app)))
    assert await reconciler.run_once() == 1

    settled = await read(client, shop.user.headers, payment.id)
    assert settled["status"] == "failed"
    assert settled["failureCode"] == "CARD_DECLINED"
    assert await ledger_of(app, payment.id) == []
    assert await stored_event_types(app, payment.id) == ["payment.failed"]
    assert (await daily_holds(app, shop))["spent"] == 0


async def test_reconciling_twice_settles_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 11_000)
    await charged_at_gateway(app, payment)
    clock = Clock(payment.updated_at + reconcile_after(app))

    assert await reconciler_for(app, clock).run_once() == 1
    clock.now += reconcile_after(app) * 2
    assert await reconciler_for(app, clock).run_once() == 0

    assert len(await ledger_of(app, payment.id)) == 1
    assert len(await documents(app, "events", paymentId=payment.id)) == 1
    assert (await stats_of(client, shop.user))["totalTransactions"] == 1


@pytest.mark.race
async def test_two_reconcilers_at_once_settle_once_and_ask_the_gateway_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 11_000)
    await charged_at_gateway(app, payment)
    lookups = charge_lookups(app)
    slow_gateway(app)  # each lookup waits on the "network", so the two reconcilers overlap
    clock = Clock(payment.updated_at + reconcile_after(app))

    handled = await asyncio.gather(
        reconciler_for(app, clock, "reconciler-a").run_once(),
        reconciler_for(app, clock, "reconciler-b").run_once(),
    )

    assert sorted(handled) == [0, 1]
    assert lookups == [payment.id]
    assert (await stored_payment(app, payment.id))["status"] == "completed"
    assert len(await ledger_of(app, payment.id)) == 1
    assert len(await documents(app, "events", paymentId=payment.id)) == 1
    totals = await stats_of(client, shop.user)
    assert (totals["totalTransactions"], totals["totalAmount"]) == (1, 11_000)


async def test_a_dead_reconcilers_lease_is_taken_over_only_after_it_expires(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """A real reconciler claims the payment, with the service's own lease, and dies while it
    waits on the gateway: another takes the payment over once that lease has run out, and
    not a moment before."""
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 11_000)
    await charged_at_gateway(app, payment)
    # Whole seconds (the store keeps milliseconds), late enough for the payment to be stale.
    claimed_at = (payment.updated_at + reconcile_after(app) + timedelta(seconds=1)).replace(
        microsecond=0
    )
    clock = Clock(claimed_at)
    lease = timedelta(seconds=workers.LEASE_SECONDS)
    assert lease < timedelta(seconds=20)  # the contract: a dead holder's work taken over in 20 s
    gate = GatewayGate(app)  # holds the first reconciler's lookup at the gateway
    # It dies mid-way, its lookup unanswered and its lease left behind.
    holder = reconciler_for(app, clock, "reconciler-a")
    await killed_once_there(holder.run_once(), gate.arrived, "the first reconciler")
    left = await stored_payment(app, payment.id)  # the service's lease, as a dead holder left it
    assert (left["reconcileLockedBy"], left["reconcileLockedUntil"]) == (
        "reconciler-a",
        claimed_at + lease,
    )
    gate.open()
    survivor = reconciler_for(app, clock, "reconciler-b")

    assert await survivor.run_once() == 0
    clock.now = claimed_at + lease - timedelta(milliseconds=1)
    assert await survivor.run_once() == 0
    assert gate.calls == 1  # the survivor never asked the gateway while the lease stood
    assert (await stored_payment(app, payment.id))["status"] == "pending"

    clock.now = claimed_at + lease + timedelta(milliseconds=1)
    assert await survivor.run_once() == 1
    after = await stored_payment(app, payment.id)
    assert after["status"] == "completed"
    assert after["reconcileLockedBy"] == "reconciler-b"
    assert gate.calls == 2
    assert len(await ledger_of(app, payment.id)) == 1
    assert await stored_event_types(app, payment.id) == ["payment.completed"]
    assert sandbox_ledger(app).charges_made == 1


# --- refunds and cancels left half-done ------------------------------------------------------


@pytest.mark.parametrize("reached", [True, False], ids=["answer-lost", "never-sent"])
async def test_half_done_refund_is_finished_by_reconciliation(
    client: httpx.AsyncClient, app: FastAPI, reached: bool
) -> None:
    shop, paid = await open_shop_and_pay(client, 10_000)
    payment_id = paid["paymentId"]
    lossy = LostAnswers(app, reached=reached)

    response = await refund(client, shop.merchant.headers, payment_id, 4_000)
    assert response.status_code == 202, response.text
    refund_id = response.json()["refund"]["refundId"]
    lossy.on = False
    reserved = await stored_payment(app, payment_id)
    assert [p["refundId"] for p in reserved["pendingRefunds"]] == [refund_id]
    assert (await read(client, shop.user.headers, payment_id))["refundedAmount"] == 0
    assert await events_of(app, payment_id, "payment.refunded") == []
    changed = reserved["updatedAt"]
    clock = Clock(changed + reconcile_after(app) - timedelta(seconds=1))
    reconciler = reconciler_for(app, clock)

    assert await reconciler.run_once() == 0
    assert (await stored_payment(app, payment_id))["pendingRefunds"] != []

    clock.now = changed + reconcile_after(app)
    assert await reconciler.run_once() == 1

    settled = await read(client, shop.user.headers, payment_id)
    assert settled["status"] == "partially_refunded"
    assert settled["refundedAmount"] == 4_000
    records = await ledger_of(app, payment_id)
    assert sorted((r["type"], r["amount"]) for r in records) == [
        ("payment", 10_000),
        ("refund", 4_000),
    ]
    [event] = await events_of(app, payment_id, "payment.refunded")
    assert event["data"]["payment"]["refundedAmount"] == 4_000
    assert event["data"]["payment"]["status"] == "partially_refunded"
    [stored_refund] = await documents(app, "refunds", _id=refund_id)
    assert stored_refund["status"] == "succeeded"
    assert sandbox_ledger(app).charges[payment_id].refunds == {refund_id: 4_000}
    await assert_money_agrees(app, settled)

    clock.now += reconcile_after(app) * 2
    assert await reconciler.run_once() == 0
    assert len(await events_of(app, payment_id, "payment.refunded")) == 1
    assert len(await ledger_of(app, payment_id)) == 2


async def test_half_done_cancel_is_finished_by_reconciliation(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, paid = await open_shop_and_pay(client, 10_000)
    payment_id = paid["paymentId"]
    lossy = LostAnswers(app, reached=True)
    response = await cancel(client, shop.user, payment_id)
    assert response.status_code == 503, response.text
    lossy.on = False
    assert sandbox_ledger(app).charges[payment_id].status == "cancelled"
    changed = await last_change(app, payment_id)

    reconciler = reconciler_for(app, Clock(changed + reconcile_after(app)))
    assert await reconciler.run_once() == 1

    settled = await read(client, shop.user.headers, payment_id)
    assert settled["status"] == "cancelled"
    assert len(await events_of(app, payment_id, "payment.cancelled")) == 1
    assert sorted(r["type"] for r in await ledger_of(app, payment_id)) == ["cancel", "payment"]
    assert (await stats_of(client, shop.user))["todaySpent"] == 0
    await assert_money_agrees(app, settled)


async def test_refund_that_never_reserved_its_amount_is_marked_failed(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, paid = await open_shop_and_pay(client, 10_000)
    created = utcnow()
    orphan = Refund(
        id=ids.refund_id(),
        payment_id=paid["paymentId"],
        user_id=shop.user.user_id,
        merchant_id=shop.merchant.merchant_id,
        amount=2_000,
        reason="The process died before the reservation",
        status="pending",
        requested_by=f"merchant:{shop.merchant.merchant_id}",
        created_at=created,
        updated_at=created,
    )
    await collection(app, "refunds").insert_one(orphan.to_mongo())

    await reconciler_for(app, Clock(created + reconcile_after(app))).run_once()

    [stored_refund] = await documents(app, "refunds", _id=orphan.id)
    assert stored_refund["status"] == "failed"
    after = await read(client, shop.user.headers, paid["paymentId"])
    assert (after["status"], after["refundedAmount"]) == ("completed", 0)
    assert await events_of(app, paid["paymentId"], "payment.refunded") == []
    assert orphan.id not in sandbox_ledger(app).charges[paid["paymentId"]].refunds


# --- metrics ---------------------------------------------------------------------------------


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


async def test_metrics_show_reconciled_outcomes_and_the_oldest_pending_age(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    pending = await pay(client, shop.user, shop.merchant.merchant_id, 10_408, expect=202)
    stored = await stored_payment(app, pending["paymentId"])
    never_charged = await abandoned_payment(app, shop, 9_000)
    clock = Clock(stored["createdAt"] + timedelta(seconds=10))
    reconciler = reconciler_for(app, clock)

    assert await reconciler.run_once() == 0
    # A pass sets the age by the reconciler's clock (in a worker process, its own registry)…
    assert app.state.services.metrics.oldest_pending_age.value() == 10.0
    # …and the API's /metrics reads it afresh from the database at the scrape, by its own.
    text = (await client.get("/metrics")).text
    age = metric(text, "oldest_pending_payment_age_seconds")
    assert age is not None
    assert 0.0 <= age < 10.0
    assert metric(text, 'reconciled_payments_total{outcome="completed"}') is None

    clock.now = max(stored["updatedAt"], never_charged.updated_at) + reconcile_after(app)
    assert await reconciler.run_once() == 2

    text = (await client.get("/metrics")).text
    assert metric(text, 'reconciled_payments_total{outcome="completed"}') == 1.0
    assert metric(text, 'reconciled_payments_total{outcome="failed"}') == 1.0
    assert metric(text, "oldest_pending_payment_age_seconds") == 0.0
