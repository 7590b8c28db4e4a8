"""The rules that span processes, raced across two apps on one database, one Redis and one
gateway (the race backends: the interleaving stand-in and the wire): one key makes one charge,
the daily limit holds, refunds never pass the amount, and a cancel and a refund have one winner,
whichever app each request reaches."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from tests.fixtures.apps import running
from tests.fixtures.payments import (
    assert_money_agrees,
    cancel_racing_refund,
    documents,
    new_key,
    open_shop_and_pay,
    payment_body,
    post_payment,
    read,
    refund,
    sandbox_ledger,
    slow_gateway,
    stats_of,
    user_and_merchant,
)
from tests.fixtures.races import PushedSubdocumentStoredAsString, nx_gap
from tests.fixtures.reconciliation import (
    Clock,
    abandoned_payment,
    charged_at_gateway,
    reconcile_after,
    reconciler_for,
)

pytestmark = pytest.mark.race

Twin = tuple[FastAPI, httpx.AsyncClient]


async def test_one_key_sent_to_two_apps_makes_one_payment_and_one_charge(
    client: httpx.AsyncClient, app: FastAPI, twin: Twin
) -> None:
    _, other = twin
    user, merchant = await user_and_merchant(client)
    key = new_key()
    body = payment_body(merchant.merchant_id, 25_000)

    responses = await asyncio.gather(
        *(post_payment(http, user, body, key) for http in (client, other) * 5)
    )

    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {200, 201, 409}, statuses
    assert statuses[201] >= 1, statuses
    [stored] = await documents(app, "payments", userId=user.user_id)
    assert sandbox_ledger(app).charges_made == 1
    assert sandbox_ledger(app).charge_attempts == {stored["_id"]: 1}
    for response in responses:
        if response.status_code in (200, 201):
            assert response.json()["payment"]["paymentId"] == stored["_id"]
    assert (await stats_of(other, user))["todaySpent"] == 25_000


async def test_two_apps_together_never_pass_the_daily_limit(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(default_daily_limit=50_000)
    async with running(settings) as (app, client), running(settings) as (_, other):
        user, merchant = await user_and_merchant(client)
        body = payment_body(merchant.merchant_id, 10_000)

        responses = await asyncio.gather(
            *(post_payment(http, user, body) for http in (client, other) * 5)
        )

        assert Counter(r.status_code for r in responses) == {201: 5, 422: 5}
        [spending] = await documents(app, "daily_spending", userId=user.user_id)
        assert spending["spent"] == 50_000
        assert sandbox_ledger(app).charges_made == 5
        assert (await stats_of(other, user))["todaySpent"] == 50_000


@nx_gap(PushedSubdocumentStoredAsString)
async def test_refunds_through_two_apps_never_exceed_the_amount(
    client: httpx.AsyncClient, app: FastAPI, twin: Twin
) -> None:
    _, other = twin
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    slow_gateway(app)

    responses = await asyncio.gather(
        *(
            refund(http, shop.merchant.headers, payment_id, 3_000, f"Race {n}")
            for n, http in enumerate((client, other) * 5)
        )
    )

    assert Counter(r.status_code == 200 for r in responses) == {True: 3, False: 7}
    assert sandbox_ledger(app).refund_requests == 3  # the service, not the gateway, said no
    current = await read(other, shop.merchant.headers, payment_id)
    assert current["refundedAmount"] == 9_000
    await assert_money_agrees(app, current)


@nx_gap(PushedSubdocumentStoredAsString)
@pytest.mark.parametrize("first", ["cancel", "refund"])
async def test_a_cancel_on_one_app_and_a_refund_on_the_other_have_one_winner(
    client: httpx.AsyncClient, app: FastAPI, twin: Twin, first: str
) -> None:
    _, other = twin
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]

    cancelled, _ = await cancel_racing_refund(
        app, shop, payment_id, first, cancel_via=client, refund_via=other, refund_amount=3_000
    )

    current = await read(other, shop.user.headers, payment_id)
    assert current["status"] == (
        "cancelled" if cancelled.status_code == 200 else "partially_refunded"
    )
    await assert_money_agrees(app, current)


async def test_the_reconcilers_of_two_apps_settle_a_payment_once(
    client: httpx.AsyncClient, app: FastAPI, twin: Twin
) -> None:
    other_app, _ = twin
    shop, _ = await open_shop_and_pay(client, 1_000)
    payment = await abandoned_payment(app, shop, 11_000)
    await charged_at_gateway(app, payment)
    slow_gateway(app)
    clock = Clock(payment.updated_at + reconcile_after(app))

    handled = await asyncio.gather(
        reconciler_for(app, clock, "reconciler-a").run_once(),
        reconciler_for(other_app, clock, "reconciler-b").run_once(),
    )

    assert sorted(handled) == [0, 1]
    [stored] = await documents(app, "payments", _id=payment.id)
    assert stored["status"] == "completed"
    assert len(await documents(app, "transactions", paymentId=payment.id)) == 1
    assert len(await documents(app, "events", paymentId=payment.id)) == 1
    assert (await stats_of(client, shop.user))["totalTransactions"] == 2
