"""Concurrent creates: one key never makes two payments or two charges, and the daily limit is
never passed, whatever the interleaving of the requests."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from tests.fixtures.apps import running
from tests.fixtures.factories import RegisteredUser, create_merchant, register_user
from tests.fixtures.payments import (
    documents,
    new_key,
    payment_body,
    post_payment,
    stats_of,
    user_and_merchant,
)

pytestmark = pytest.mark.race


async def today_spent(client: httpx.AsyncClient, user: RegisteredUser) -> int:
    spent: int = (await stats_of(client, user))["todaySpent"]
    return spent


async def test_twenty_concurrent_requests_with_one_key_make_one_payment_and_one_charge(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    body = payment_body(merchant.merchant_id, 25_000)

    responses = await asyncio.gather(*(post_payment(client, user, body, key) for _ in range(20)))

    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {200, 201, 409}, statuses
    assert statuses[201] >= 1, statuses
    stored = await documents(app, "payments", userId=user.user_id)
    assert len(stored) == 1
    payment_id = stored[0]["_id"]
    ledger = app.state.sandbox.state.ledger
    assert ledger.charges_made == 1
    assert ledger.charge_attempts == {payment_id: 1}
    for response in responses:
        body_out = response.json()
        if response.status_code in (200, 201):
            assert body_out["payment"]["paymentId"] == payment_id
        if response.status_code == 200:  # a replay comes only after the first finished
            assert response.headers["Idempotent-Replayed"] == "true"
            assert body_out["payment"]["status"] == "completed"
        if response.status_code == 409:
            assert body_out["error"] == "IDEMPOTENCY_KEY_IN_USE"
            assert "Retry-After" in response.headers
    assert len(await documents(app, "transactions", paymentId=payment_id)) == 1
    assert len(await documents(app, "events", paymentId=payment_id)) == 1
    assert await today_spent(client, user) == 25_000


async def test_concurrent_payments_never_pass_the_daily_limit(
    make_settings: Callable[..., Settings],
) -> None:
    limit = 50_000
    async with running(make_settings(default_daily_limit=limit)) as (app, client):
        user, merchant = await user_and_merchant(client)
        body = payment_body(merchant.merchant_id, 10_000)

        responses = await asyncio.gather(*(post_payment(client, user, body) for _ in range(10)))

        statuses = Counter(response.status_code for response in responses)
        assert statuses == {201: 5, 422: 5}, statuses
        for response in responses:
            if response.status_code == 422:
                refused = response.json()
                assert refused["error"] == "DAILY_LIMIT_EXCEEDED"
                assert "remainingToday" in refused
                assert 0 <= refused["remainingToday"] < 10_000
        completed = await documents(app, "payments", userId=user.user_id, status="completed")
        assert len(completed) == 5
        assert sum(doc["amount"] for doc in completed) <= limit
        assert len(await documents(app, "payments", userId=user.user_id)) == 5
        spending = await documents(app, "daily_spending", userId=user.user_id)
        assert len(spending) == 1
        assert spending[0]["spent"] == 50_000
        assert spending[0]["spent"] <= limit
        assert app.state.sandbox.state.ledger.charges_made == 5
        assert await today_spent(client, user) == 50_000


async def test_concurrent_payments_of_two_users_count_against_their_own_limits(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(default_daily_limit=30_000)) as (_, client):
        merchant = await create_merchant(client)
        alice = await register_user(client)
        bob = await register_user(client)
        body = payment_body(merchant.merchant_id, 10_000)

        responses = await asyncio.gather(
            *(post_payment(client, who, body) for who in (alice, bob) * 5)
        )

        assert Counter(r.status_code for r in responses) == {201: 6, 422: 4}
        assert await today_spent(client, alice) == 30_000
        assert await today_spent(client, bob) == 30_000


async def test_declined_payment_gives_its_hold_back(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    completed = await post_payment(client, user, payment_body(merchant.merchant_id, 10_000))
    assert completed.status_code == 201, completed.text
    before = await today_spent(client, user)
    assert before == 10_000

    declined = await post_payment(client, user, payment_body(merchant.merchant_id, 20_402))

    assert declined.status_code == 402, declined.text
    assert await today_spent(client, user) == before
    spending = await documents(app, "daily_spending", userId=user.user_id)
    assert [doc["spent"] for doc in spending] == [10_000]
    assert declined.json()["payment"]["paymentId"] not in spending[0]["holds"]


async def test_concurrent_declines_leave_room_for_a_payment_up_to_the_limit(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(default_daily_limit=50_000)) as (_, client):
        user, merchant = await user_and_merchant(client)

        declines = await asyncio.gather(
            *(
                post_payment(client, user, payment_body(merchant.merchant_id, 10_402))
                for _ in range(4)
            )
        )
        full = await post_payment(client, user, payment_body(merchant.merchant_id, 50_000))

        assert [response.status_code for response in declines] == [402] * 4
        assert full.status_code == 201, full.text
        assert await today_spent(client, user) == 50_000
