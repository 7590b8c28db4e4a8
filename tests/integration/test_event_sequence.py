"""Every event says where it stands among its payment's changes: `data.sequence` (1, 2, 3 …, in
the order of the changes, no gaps, never twice) and `data.previousStatus` (the status the change
left), so a receiver of deliveries out of order can drop what it has seen. Through the API, the
reconciler, a process that died mid-way, and concurrent requests on the race backends."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.models import event as events_model
from payments_api.services.events import STREAM
from tests.fixtures.crashes import die_once
from tests.fixtures.payments import (
    Shop,
    cancel,
    cancel_racing_refund,
    documents,
    open_shop,
    open_shop_and_pay,
    pay,
    read,
    refund,
    slow_gateway,
)
from tests.fixtures.races import PushedSubdocumentStoredAsString, nx_gap
from tests.fixtures.reconciliation import (
    Clock,
    GatewayCut,
    abandoned_payment,
    charged_at_gateway,
    last_change,
    reconcile_after,
    reconciler_for,
)
from tests.fixtures.servers import Receiver

Change = tuple[int, str, str, str]
"""What one event tells of its change: (sequence, type, previousStatus, the status it left)."""


async def published(app: FastAPI, payment_id: str) -> list[dict[str, Any]]:
    """The payment's events (never its drafts), in the order of their sequence."""
    found = await documents(app, "events", paymentId=payment_id)
    events = [e for e in found if e["status"] != "draft"]
    return sorted(events, key=lambda e: e["data"]["sequence"])


async def changes(app: FastAPI, payment_id: str) -> list[Change]:
    """What the payment's events tell, after checking they tell one unbroken story: numbered
    1 to n, each starting from the status the one before it left (the first from `pending`)."""
    events = await published(app, payment_id)
    told = [
        (
            e["data"]["sequence"],
            e["type"],
            e["data"]["previousStatus"],
            e["data"]["payment"]["status"],
        )
        for e in events
    ]
    assert [sequence for sequence, *_ in told] == list(range(1, len(told) + 1)), told
    left = ["pending", *(status for *_, status in told)]
    assert [previous for _, _, previous, _ in told] == left[:-1], told
    return told


async def test_a_completion_then_refunds_are_numbered_in_order_with_the_status_each_left(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000, webhookUrl=receiver.url)
    payment_id = payment["paymentId"]
    for amount in (3_000, 2_000, 5_000):
        response = await refund(client, shop.merchant.headers, payment_id, amount)
        assert response.status_code == 200, response.text

    assert await changes(app, payment_id) == [
        (1, "payment.completed", "pending", "completed"),
        (2, "payment.refunded", "completed", "partially_refunded"),
        (3, "payment.refunded", "partially_refunded", "partially_refunded"),
        (4, "payment.refunded", "partially_refunded", "refunded"),
    ]
    amounts = [e["data"]["payment"]["refundedAmount"] for e in await published(app, payment_id)]
    assert amounts == [0, 3_000, 5_000, 10_000]

    # The receiver and the stream are told the same, and the payment's own view has no counter.
    assert await app.state.services.dispatcher.run_once() == 4
    stored = {e["_id"]: e["data"] for e in await published(app, payment_id)}
    assert {r.json["id"]: r.json["data"] for r in receiver.requests} == stored
    streamed = await app.state.services.redis.xrange(STREAM)
    assert {fields["id"]: json.loads(fields["data"]) for _, fields in streamed} == stored
    current = await read(client, shop.merchant.headers, payment_id)
    assert "eventSequence" not in current
    assert all("eventSequence" not in data["payment"] for data in stored.values())


async def test_a_declined_payment_is_failed_as_its_first_change(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await pay(client, shop.user, shop.merchant.merchant_id, 10_402, expect=402)

    assert await changes(app, payment["paymentId"]) == [(1, "payment.failed", "pending", "failed")]


async def test_a_cancel_is_the_change_after_the_completion(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client)
    assert (await cancel(client, shop.user, payment["paymentId"])).status_code == 200

    assert await changes(app, payment["paymentId"]) == [
        (1, "payment.completed", "pending", "completed"),
        (2, "payment.cancelled", "completed", "cancelled"),
    ]


async def test_a_refund_the_gateway_never_got_takes_no_number(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    cut = GatewayCut(app)
    cut.cut = True
    refused = await refund(client, shop.merchant.headers, payment_id, 4_000)
    assert refused.status_code == 503, refused.text
    cut.restore()

    assert (await refund(client, shop.merchant.headers, payment_id, 4_000)).status_code == 200

    assert await changes(app, payment_id) == [
        (1, "payment.completed", "pending", "completed"),
        (2, "payment.refunded", "completed", "partially_refunded"),
    ]


# --- reconciliation ------------------------------------------------------------------------


async def test_a_pending_payment_reconciled_as_charged_is_completed_as_its_first_change(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 10_000)
    await charged_at_gateway(app, payment)

    clock = Clock(await last_change(app, payment.id) + reconcile_after(app))
    assert await reconciler_for(app, clock).run_once() == 1

    assert await changes(app, payment.id) == [(1, "payment.completed", "pending", "completed")]
    assert (await refund(client, shop.merchant.headers, payment.id, 1_000)).status_code == 200
    assert [c[0] for c in await changes(app, payment.id)] == [1, 2]


async def test_a_pending_payment_the_gateway_never_charged_is_failed_as_its_first_change(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 10_000)

    clock = Clock(await last_change(app, payment.id) + reconcile_after(app))
    assert await reconciler_for(app, clock).run_once() == 1

    assert await changes(app, payment.id) == [(1, "payment.failed", "pending", "failed")]
    [event] = await published(app, payment.id)
    assert event["data"]["payment"]["failureCode"] == "NOT_CHARGED"


# --- a process that died mid-way -----------------------------------------------------------


async def test_a_completion_that_died_before_publishing_is_finished_as_the_first_change(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 10_000)
    die_once(monkeypatch, events_model, "publish_draft")
    with pytest.raises(Exception, match="publish_draft"):
        await app.state.services.settlement.complete(payment, "gtx_died")
    assert await published(app, payment.id) == []

    clock = Clock(await last_change(app, payment.id) + reconcile_after(app))
    await reconciler_for(app, clock).run_once()
    await reconciler_for(app, clock).run_once()

    assert await changes(app, payment.id) == [(1, "payment.completed", "pending", "completed")]


async def test_a_cancel_retried_after_dying_mid_way_is_numbered_once(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop, payment = await open_shop_and_pay(client)
    payment_id = payment["paymentId"]
    die_once(monkeypatch, events_model, "append", after=True)  # its draft written, then dead
    died = await cancel(client, shop.user, payment_id)
    assert died.status_code == 500, died.text

    retried = await cancel(client, shop.user, payment_id)
    assert retried.status_code == 200, retried.text

    assert await changes(app, payment_id) == [
        (1, "payment.completed", "pending", "completed"),
        (2, "payment.cancelled", "completed", "cancelled"),
    ]


# --- concurrency ---------------------------------------------------------------------------


async def _racing_refunds(client: httpx.AsyncClient, shop: Shop, payment_id: str, n: int) -> None:
    responses = await asyncio.gather(
        *(refund(client, shop.merchant.headers, payment_id, 1_000, f"Race {i}") for i in range(n))
    )
    assert [r.status_code for r in responses] == [200] * n, [r.text for r in responses]


@pytest.mark.race
@nx_gap(PushedSubdocumentStoredAsString)
async def test_racing_refunds_take_consecutive_numbers_each_after_the_one_before(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    slow_gateway(app)

    await _racing_refunds(client, shop, payment_id, 6)

    told = await changes(app, payment_id)  # 1..7, each from the status the one before left
    assert [c[1] for c in told] == ["payment.completed"] + ["payment.refunded"] * 6
    amounts = [e["data"]["payment"]["refundedAmount"] for e in await published(app, payment_id)]
    assert amounts == [0, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000]


@pytest.mark.race
@nx_gap(PushedSubdocumentStoredAsString)
async def test_refunds_racing_through_two_apps_take_consecutive_numbers(
    client: httpx.AsyncClient, app: FastAPI, twin: tuple[FastAPI, httpx.AsyncClient]
) -> None:
    _, other = twin
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    slow_gateway(app)

    await asyncio.gather(
        _racing_refunds(client, shop, payment_id, 3), _racing_refunds(other, shop, payment_id, 3)
    )

    assert [c[0] for c in await changes(app, payment_id)] == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.race
@nx_gap(PushedSubdocumentStoredAsString)
@pytest.mark.parametrize("first", ["cancel", "refund"])
async def test_a_cancel_racing_a_refund_numbers_only_the_winner(
    client: httpx.AsyncClient, app: FastAPI, first: str
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]

    cancelled, _ = await cancel_racing_refund(
        app, shop, payment_id, first, cancel_via=client, refund_via=client, refund_amount=None
    )

    won = "payment.cancelled" if cancelled.status_code == 200 else "payment.refunded"
    told = await changes(app, payment_id)
    assert [(c[0], c[1], c[2]) for c in told] == [
        (1, "payment.completed", "pending"),
        (2, won, "completed"),
    ]
