"""A refund whose process died after the gateway's yes and the ledger record, before the
refund's status and event were written, is finished by reconciliation: exactly one event."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from payments_api.utils.clock import utcnow
from tests.fixtures.payments import collection, events_of, ledger_of, open_shop_and_pay, refund
from tests.fixtures.reconciliation import reconciler_on


async def test_a_refund_that_died_after_its_ledger_record_gets_its_status_and_event(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    response = await refund(client, shop.merchant.headers, payment["paymentId"], 4_000)
    assert response.status_code == 200, response.text
    refund_id = response.json()["refund"]["refundId"]
    # Undo what the dead process never wrote: the refund's status and its event.
    await collection(app, "refunds").update_one({"_id": refund_id}, {"$set": {"status": "pending"}})
    await collection(app, "events").delete_many({"dedupeKey": {"$regex": refund_id}})
    assert await events_of(app, payment["paymentId"], "payment.refunded") == []

    services = app.state.services
    later = utcnow() + timedelta(seconds=services.settings.reconcile_after_seconds + 1)
    reconciler = reconciler_on(services, clock=lambda: later)
    await reconciler.run_once()
    await reconciler.run_once()

    stored = await collection(app, "refunds").find_one({"_id": refund_id})
    assert stored["status"] == "succeeded"
    refunded_events = await events_of(app, payment["paymentId"], "payment.refunded")
    assert len(refunded_events) == 1
    assert refunded_events[0]["data"]["payment"]["refundedAmount"] == 4_000
    refund_records = [
        r for r in await ledger_of(app, payment["paymentId"]) if r["type"] == "refund"
    ]
    assert len(refund_records) == 1
