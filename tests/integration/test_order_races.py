"""Creates for one merchant order raced with different Idempotency-Keys, in one app and across
two: exactly one payment and one charge, every other request 409 `DUPLICATE_ORDER_ID` with
nothing of its own left behind (no payment, hold, charge or event)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI

from payments_api.models import payment as payment_store
from tests.fixtures.payments import (
    documents,
    payment_body,
    post_payment,
    sandbox_ledger,
    stats_of,
    user_and_merchant,
)
from tests.fixtures.races import DuplicateKeyWithoutIndexName, meet_at, nx_gap

pytestmark = [pytest.mark.race, nx_gap(DuplicateKeyWithoutIndexName)]

Twin = tuple[FastAPI, httpx.AsyncClient]


async def assert_one_payment_for_the_order(
    app: FastAPI, responses: list[httpx.Response], order_id: str, amount: int
) -> str:
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 1, 409: len(responses) - 1}, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"] == "DUPLICATE_ORDER_ID"
    [stored] = await documents(app, "payments", merchantOrderId=order_id)
    winner = next(r for r in responses if r.status_code == 201).json()["payment"]
    assert stored["_id"] == winner["paymentId"]
    assert sandbox_ledger(app).charges_made == 1
    assert sandbox_ledger(app).charge_attempts == {stored["_id"]: 1}
    [spending] = await documents(app, "daily_spending", userId=stored["userId"])
    assert spending["spent"] == amount
    assert list(spending["holds"]) == [stored["_id"]]
    assert {e["paymentId"] for e in await documents(app, "events")} == {stored["_id"]}
    return str(stored["_id"])


async def test_two_creates_for_one_order_make_one_payment_and_one_charge(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, merchant = await user_and_merchant(client)
    body = payment_body(merchant.merchant_id, 25_000, merchantOrderId="race-1")
    meet_at(payment_store, "insert", 2, monkeypatch)  # both are past every check: the index decides

    responses = await asyncio.gather(*(post_payment(client, user, body) for _ in range(2)))

    await assert_one_payment_for_the_order(app, list(responses), "race-1", 25_000)
    assert (await stats_of(client, user))["todaySpent"] == 25_000


async def test_one_order_sent_to_two_apps_makes_one_payment_and_one_charge(
    client: httpx.AsyncClient, app: FastAPI, twin: Twin, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, other = twin
    user, merchant = await user_and_merchant(client)
    body = payment_body(merchant.merchant_id, 10_000, merchantOrderId="race-2")
    meet_at(payment_store, "insert", 6, monkeypatch)

    responses = await asyncio.gather(
        *(post_payment(http, user, body) for http in (client, other) * 3)
    )

    await assert_one_payment_for_the_order(app, list(responses), "race-2", 10_000)
    assert (await stats_of(other, user))["todaySpent"] == 10_000
