"""A refund whose process died after the gateway's yes is finished by reconciliation, with
exactly one event in its place in the payment's sequence: one that died after its
compare-and-set (the event's draft written, not published; the refund's status not written),
and one that died before it while another refund of the payment went first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.models import event as events_model
from payments_api.utils.clock import utcnow
from tests.fixtures.crashes import die_once
from tests.fixtures.payments import collection, events_of, ledger_of, open_shop_and_pay, refund
from tests.fixtures.reconciliation import reconciler_on


async def reconcile_later(app: FastAPI) -> None:
    """Two reconciliation passes, once everything above is older than RECONCILE_AFTER."""
    services = app.state.services
    later = utcnow() + timedelta(seconds=services.settings.reconcile_after_seconds + 1)
    reconciler = reconciler_on(services, clock=lambda: later)
    await reconciler.run_once()
    await reconciler.run_once()


async def refunded_events(app: FastAPI, payment_id: str) -> list[dict[str, Any]]:
    """The payment's published refund events, in the order of their sequence."""
    found = await events_of(app, payment_id, "payment.refunded")
    published = [e for e in found if e["status"] != "draft"]
    return sorted(published, key=lambda e: e["data"]["sequence"])


async def test_a_refund_that_died_after_its_compare_and_set_gets_its_status_and_one_event(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    die_once(monkeypatch, events_model, "publish_draft")
    response = await refund(client, shop.merchant.headers, payment_id, 4_000)
    assert response.status_code == 500, response.text  # the process died there
    [stored_refund] = [r async for r in collection(app, "refunds").find({"paymentId": payment_id})]
    assert stored_refund["status"] == "pending"
    assert await refunded_events(app, payment_id) == []  # its draft reaches no one yet

    await reconcile_later(app)

    stored = await collection(app, "refunds").find_one({"_id": stored_refund["_id"]})
    assert stored["status"] == "succeeded"
    [event] = await refunded_events(app, payment_id)
    assert event["data"]["payment"]["refundedAmount"] == 4_000
    assert event["data"]["payment"]["status"] == "partially_refunded"
    assert (event["data"]["sequence"], event["data"]["previousStatus"]) == (2, "completed")
    refund_records = [r for r in await ledger_of(app, payment_id) if r["type"] == "refund"]
    assert len(refund_records) == 1

    # The next change takes the next number: none skipped, none used twice.
    assert (await refund(client, shop.merchant.headers, payment_id, 1_000)).status_code == 200
    events = await refunded_events(app, payment_id)
    assert [(e["data"]["sequence"], e["data"]["previousStatus"]) for e in events] == [
        (2, "completed"),
        (3, "partially_refunded"),
    ]


async def test_a_refund_that_died_before_its_compare_and_set_takes_the_number_after_others(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its draft was written for sequence 2, then another refund took 2: when reconciliation
    finishes it, its event is 3 — the draft rewritten for the change that won."""
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    die_once(monkeypatch, events_model, "save_draft", after=True)
    died = await refund(client, shop.merchant.headers, payment_id, 4_000)
    assert died.status_code == 500, died.text
    [draft] = await events_of(app, payment_id, "payment.refunded")
    assert (draft["status"], draft["data"]["sequence"]) == ("draft", 2)

    other = await refund(client, shop.merchant.headers, payment_id, 1_000)
    assert other.status_code == 200, other.text
    await reconcile_later(app)

    events = await refunded_events(app, payment_id)
    assert [
        (e["data"]["sequence"], e["data"]["previousStatus"], e["data"]["payment"]["refundedAmount"])
        for e in events
    ] == [(2, "completed", 1_000), (3, "partially_refunded", 5_000)]
    assert [e["status"] for e in await events_of(app, payment_id, "payment.refunded")] == [
        "pending",
        "pending",
    ]
