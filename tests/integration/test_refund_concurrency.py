"""Refunds and cancels racing on one payment, for real (asyncio.gather over the ASGI app, on the
interleaving stand-in and over the wire): the refunds never add up to more than the amount, a
cancel and a refund never both win, and the payment, its refunds, the ledger and the gateway
agree afterwards. The service refuses what the payment does not allow before asking the gateway:
the races count the requests that reached it, not only the answers."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.payments import (
    GatewayGate,
    assert_money_agrees,
    cancel,
    cancel_racing_refund,
    documents,
    events_of,
    ledger_net,
    ledger_of,
    open_shop_and_pay,
    pay,
    read,
    refund,
    sandbox_charge,
    sandbox_ledger,
    slow_gateway,
    succeeded_refunds,
    with_idempotency_key,
)
from tests.fixtures.races import PushedSubdocumentStoredAsString, nx_gap

pytestmark = [pytest.mark.race, nx_gap(PushedSubdocumentStoredAsString)]


async def test_ten_racing_refunds_never_exceed_the_amount(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]

    slow_gateway(app)
    responses = await asyncio.gather(
        *(refund(client, shop.merchant.headers, payment_id, 3_000, f"Race {n}") for n in range(10))
    )

    winners = [r for r in responses if r.status_code == 200]
    losers = [r for r in responses if r.status_code != 200]
    assert len(winners) == 3, [r.text for r in responses]
    for loser in losers:
        assert loser.status_code in (409, 422), loser.text
        assert loser.json()["error"] in ("REFUND_EXCEEDS_AVAILABLE", "PAYMENT_NOT_REFUNDABLE")
    assert all(r.json()["refund"]["status"] == "succeeded" for r in winners)
    assert len({r.json()["refund"]["refundId"] for r in winners}) == 3

    current = await read(client, shop.merchant.headers, payment_id)
    assert current["refundedAmount"] == 9_000
    assert current["status"] == "partially_refunded"
    assert sum(r["amount"] for r in await succeeded_refunds(app, payment_id)) == 9_000
    assert sum(sandbox_charge(app, payment_id).refunds.values()) == 9_000
    assert sandbox_ledger(app).refund_requests == 3  # the service, not the gateway, said no
    assert await ledger_net(app, payment_id) == 1_000
    assert len(await events_of(app, payment_id, "payment.refunded")) == 3
    await assert_money_agrees(app, current)

    rest = await refund(client, shop.merchant.headers, payment_id)
    assert rest.status_code == 200, rest.text
    assert rest.json()["refund"]["amount"] == 1_000


async def test_racing_refunds_of_everything_left_refund_it_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]

    slow_gateway(app)
    responses = await asyncio.gather(
        *(refund(client, shop.merchant.headers, payment_id) for _ in range(8))
    )

    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] == 1, [r.text for r in responses]
    assert set(statuses) <= {200, 409, 422}
    winner = next(r for r in responses if r.status_code == 200)
    assert winner.json()["refund"]["amount"] == 10_000
    assert sandbox_ledger(app).refund_requests == 1
    current = await read(client, shop.merchant.headers, payment_id)
    assert current["status"] == "refunded"
    assert current["refundedAmount"] == 10_000
    await assert_money_agrees(app, current)


async def test_racing_refunds_with_one_idempotency_key_refund_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    headers = with_idempotency_key(shop.merchant.headers, "one-refund-only")

    slow_gateway(app)
    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/v1/payments/{payment_id}/refund",
                json={"amount": 2_000, "reason": "Retried by a nervous client"},
                headers=headers,
            )
            for _ in range(6)
        )
    )

    for response in responses:
        assert response.status_code in (200, 409), response.text
        if response.status_code == 409:
            assert response.json()["error"] == "IDEMPOTENCY_KEY_IN_USE"
            assert "Retry-After" in response.headers
    succeeded = [r for r in responses if r.status_code == 200]
    assert succeeded
    assert len({r.json()["refund"]["refundId"] for r in succeeded}) == 1
    assert len(sandbox_charge(app, payment_id).refunds) == 1
    assert sandbox_ledger(app).refund_requests == 1
    assert len(await documents(app, "refunds", paymentId=payment_id)) == 1
    current = await read(client, shop.merchant.headers, payment_id)
    assert current["refundedAmount"] == 2_000
    await assert_money_agrees(app, current)


@pytest.mark.parametrize("first", ["cancel", "refund"])
@pytest.mark.parametrize("refund_amount", [3_000, None])
async def test_a_cancel_racing_a_refund_has_exactly_one_winner(
    client: httpx.AsyncClient, app: FastAPI, first: str, refund_amount: int | None
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]

    cancelled, refunded = await cancel_racing_refund(
        app,
        shop,
        payment_id,
        first,
        cancel_via=client,
        refund_via=client,
        refund_amount=refund_amount,
    )

    current = await read(client, shop.user.headers, payment_id)
    ledger_types = Counter(r["type"] for r in await ledger_of(app, payment_id))
    if cancelled.status_code == 200:
        assert refunded.status_code in (409, 422), refunded.text
        assert current["status"] == "cancelled"
        assert current["refundedAmount"] == 10_000
        assert await succeeded_refunds(app, payment_id) == []
        assert sandbox_charge(app, payment_id).refunds == {}
        assert ledger_types == Counter({"payment": 1, "cancel": 1})
        assert await events_of(app, payment_id, "payment.refunded") == []
    else:
        assert cancelled.status_code == 409, cancelled.text
        assert cancelled.json()["error"] == "PAYMENT_NOT_CANCELLABLE"
        won = refunded.json()["refund"]
        assert current["status"] in ("partially_refunded", "refunded")
        assert current["refundedAmount"] == won["amount"]
        assert current["cancelReason"] is None
        assert sandbox_charge(app, payment_id).status == "approved"
        assert ledger_types == Counter({"payment": 1, "refund": 1})
        assert await events_of(app, payment_id, "payment.cancelled") == []
    await assert_money_agrees(app, current)


async def test_racing_cancels_cancel_once(client: httpx.AsyncClient, app: FastAPI) -> None:
    shop, kept = await open_shop_and_pay(client, 4_000)
    payment_id = (await pay(client, shop.user, shop.merchant.merchant_id, 10_000))["paymentId"]

    slow_gateway(app)
    responses = await asyncio.gather(
        *(cancel(client, shop.user, payment_id, f"Tap {n}") for n in range(6))
    )

    statuses = Counter(r.status_code for r in responses)
    assert statuses[200] >= 1, [r.text for r in responses]
    assert set(statuses) <= {200, 409}, [r.text for r in responses]
    current = await read(client, shop.user.headers, payment_id)
    assert current["status"] == "cancelled"
    assert Counter(r["type"] for r in await ledger_of(app, payment_id)) == Counter(
        {"payment": 1, "cancel": 1}
    )
    assert len(await events_of(app, payment_id, "payment.cancelled")) == 1
    stats = await client.get("/api/v1/users/me/stats", headers=shop.user.headers)
    assert stats.json()["stats"]["todaySpent"] == kept["amount"]  # released exactly once
    await assert_money_agrees(app, current)


# --- one request caught while it waits on the gateway ---------------------------------------


async def test_a_cancel_while_a_refund_waits_on_the_gateway_is_refused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    gate = GatewayGate(app)
    refunding = await gate.catch(refund(client, shop.merchant.headers, payment_id, 3_000))

    cancelled = await cancel(client, shop.user, payment_id)
    gate.open()
    refunded = await refunding

    assert cancelled.status_code == 409, cancelled.text
    assert cancelled.json()["error"] == "PAYMENT_NOT_CANCELLABLE"
    assert refunded.status_code == 200, refunded.text
    assert gate.calls == 1  # the cancel never reached the gateway
    current = await read(client, shop.user.headers, payment_id)
    assert current["status"] == "partially_refunded"
    assert current["refundedAmount"] == 3_000
    await assert_money_agrees(app, current)


async def test_a_refund_while_a_cancel_waits_on_the_gateway_is_refused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    gate = GatewayGate(app)
    cancelling = await gate.catch(cancel(client, shop.user, payment_id))

    refunded = await refund(client, shop.merchant.headers, payment_id, 3_000)
    gate.open()
    cancelled = await cancelling

    assert refunded.status_code in (409, 422), refunded.text
    assert cancelled.status_code == 200, cancelled.text
    assert gate.calls == 1  # the refund never reached the gateway
    current = await read(client, shop.user.headers, payment_id)
    assert current["status"] == "cancelled"
    await assert_money_agrees(app, current)


@pytest.mark.parametrize("cache", ["cold", "warm"])
async def test_a_refund_in_flight_is_not_shown_before_it_succeeds(
    client: httpx.AsyncClient, app: FastAPI, cache: str
) -> None:
    """While a refund waits on the gateway nothing has been refunded yet: readers see the
    last committed state (completed, refundedAmount 0), never a refundedAmount that the
    status contradicts and that may still be taken back if the gateway refuses."""
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    await read(client, shop.user.headers, payment_id)
    gate = GatewayGate(app)
    refunding = await gate.catch(refund(client, shop.merchant.headers, payment_id, 3_000))
    if cache == "cold":
        readers = shop.user.user_id, shop.merchant.merchant_id
        await app.state.services.payments.cache.forget(payment_id, *readers)

    during = await read(client, shop.user.headers, payment_id)
    listed = (await client.get("/api/v1/payments", headers=shop.user.headers)).json()
    gate.open()
    assert (await refunding).status_code == 200

    assert (during["status"], during["refundedAmount"]) == ("completed", 0)
    assert [(p["status"], p["refundedAmount"]) for p in listed["payments"]] == [("completed", 0)]
