"""Concurrent creates: one key never makes two payments or two charges, and the daily limit is
never passed, whatever the interleaving of the requests."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from payments_api.app import create_app
from payments_api.config.settings import Settings
from tests.fixtures.factories import RegisteredUser, create_merchant, register_user

PAYMENTS = "/api/v1/payments"
STATS = "/api/v1/users/me/stats"

_keys = itertools.count(1)


def new_key() -> str:
    return f"race-test-{next(_keys)}"


def payment_body(merchant_id: str, amount: int = 10_000) -> dict[str, Any]:
    return {
        "amount": amount,
        "merchantId": merchant_id,
        "paymentMethod": "card",
        "productName": "Flat white",
    }


async def pay(
    client: httpx.AsyncClient, user: RegisteredUser, body: dict[str, Any], key: str
) -> httpx.Response:
    return await client.post(PAYMENTS, json=body, headers={**user.headers, "Idempotency-Key": key})


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app on its own settings, started and stopped around the block."""
    app = create_app(settings)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as http,
    ):
        yield app, http


async def find(app: FastAPI, collection: str, **query: Any) -> list[dict[str, Any]]:
    cursor = app.state.services.database[collection].find(query)
    return [doc async for doc in cursor]


async def today_spent(client: httpx.AsyncClient, user: RegisteredUser) -> int:
    response = await client.get(STATS, headers=user.headers)
    assert response.status_code == 200, response.text
    spent: int = response.json()["stats"]["todaySpent"]
    return spent


async def test_twenty_concurrent_requests_with_one_key_make_one_payment_and_one_charge(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    merchant = await create_merchant(client)
    key = new_key()
    body = payment_body(merchant.merchant_id, 25_000)

    responses = await asyncio.gather(*(pay(client, user, body, key) for _ in range(20)))

    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {200, 201, 409}, statuses
    assert statuses[201] >= 1, statuses
    stored = await find(app, "payments", userId=user.user_id)
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
    assert len(await find(app, "transactions", paymentId=payment_id)) == 1
    assert len(await find(app, "events", paymentId=payment_id)) == 1
    assert await today_spent(client, user) == 25_000


async def test_concurrent_payments_never_pass_the_daily_limit(
    make_settings: Callable[..., Settings],
) -> None:
    limit = 50_000
    async with running(make_settings(default_daily_limit=limit)) as (app, client):
        user = await register_user(client)
        merchant = await create_merchant(client)
        body = payment_body(merchant.merchant_id, 10_000)

        responses = await asyncio.gather(*(pay(client, user, body, new_key()) for _ in range(10)))

        statuses = Counter(response.status_code for response in responses)
        assert statuses == {201: 5, 422: 5}, statuses
        for response in responses:
            if response.status_code == 422:
                refused = response.json()
                assert refused["error"] == "DAILY_LIMIT_EXCEEDED"
                assert "remainingToday" in refused
                assert 0 <= refused["remainingToday"] < 10_000
        completed = await find(app, "payments", userId=user.user_id, status="completed")
        assert len(completed) == 5
        assert sum(doc["amount"] for doc in completed) <= limit
        assert len(await find(app, "payments", userId=user.user_id)) == 5
        spending = await find(app, "daily_spending", userId=user.user_id)
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
            *(pay(client, who, body, new_key()) for who in (alice, bob) * 5)
        )

        assert Counter(r.status_code for r in responses) == {201: 6, 422: 4}
        assert await today_spent(client, alice) == 30_000
        assert await today_spent(client, bob) == 30_000


async def test_declined_payment_gives_its_hold_back(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    merchant = await create_merchant(client)
    completed = await pay(client, user, payment_body(merchant.merchant_id, 10_000), new_key())
    assert completed.status_code == 201, completed.text
    before = await today_spent(client, user)
    assert before == 10_000

    declined = await pay(client, user, payment_body(merchant.merchant_id, 20_402), new_key())

    assert declined.status_code == 402, declined.text
    assert await today_spent(client, user) == before
    spending = await find(app, "daily_spending", userId=user.user_id)
    assert [doc["spent"] for doc in spending] == [10_000]
    assert declined.json()["payment"]["paymentId"] not in spending[0]["holds"]


async def test_concurrent_declines_leave_room_for_a_payment_up_to_the_limit(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(default_daily_limit=50_000)) as (_, client):
        user = await register_user(client)
        merchant = await create_merchant(client)

        declines = await asyncio.gather(
            *(
                pay(client, user, payment_body(merchant.merchant_id, 10_402), new_key())
                for _ in range(4)
            )
        )
        full = await pay(client, user, payment_body(merchant.merchant_id, 50_000), new_key())

        assert [response.status_code for response in declines] == [402] * 4
        assert full.status_code == 201, full.text
        assert await today_spent(client, user) == 50_000
