"""Creating a payment when something breaks: a slow gateway, a gateway 5xx, a gateway nobody
listens on, and Redis going away mid-life."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from tests.fixtures.apps import running
from tests.fixtures.payments import (
    PAYMENTS,
    documents,
    payment_body,
    post_payment,
    stats_of,
    user_and_merchant,
)
from tests.fixtures.servers import free_port, redis_server

# --- the gateway's answer does not come in time ---------------------------------------------


async def test_gateway_timeout_leaves_the_payment_pending_with_its_hold(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(gateway_timeout_seconds=0.3)) as (app, client):
        user, merchant = await user_and_merchant(client)

        response = await post_payment(client, user, payment_body(merchant.merchant_id, 10_408))

        assert response.status_code == 202, response.text
        body = response.json()
        assert body["success"] is True
        payment = body["payment"]
        assert payment["status"] == "pending"
        assert payment["completedAt"] is None
        assert payment["failureCode"] is None
        payment_id = payment["paymentId"]
        assert (await stats_of(client, user))["todaySpent"] == 10_408
        ledger = app.state.sandbox.state.ledger
        assert ledger.charges_made == 1
        assert ledger.charges[payment_id].status == "approved"
        assert ledger.charges[payment_id].amount == 10_408
        polled = await client.get(f"{PAYMENTS}/{payment_id}", headers=user.headers)
        assert polled.status_code == 200
        assert polled.json()["payment"]["status"] == "pending"
        stored = await documents(app, "payments", _id=payment_id)
        assert [doc["status"] for doc in stored] == ["pending"]


async def test_gateway_5xx_leaves_the_payment_pending(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)

    response = await post_payment(client, user, payment_body(merchant.merchant_id, 10_503))

    assert response.status_code == 202, response.text
    payment = response.json()["payment"]
    assert payment["status"] == "pending"
    ledger = app.state.sandbox.state.ledger
    assert ledger.charge_attempts == {payment["paymentId"]: 1}
    assert ledger.charges_made == 0
    polled = await client.get(f"{PAYMENTS}/{payment['paymentId']}", headers=user.headers)
    assert polled.json()["payment"]["status"] == "pending"


# --- the gateway cannot be reached ----------------------------------------------------------


async def test_unreachable_gateway_is_503_with_a_failed_payment_and_no_hold(
    make_settings: Callable[..., Settings],
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    async with running(make_settings(gateway_url=nobody_listens)) as (app, client):
        user, merchant = await user_and_merchant(client)

        response = await post_payment(client, user, payment_body(merchant.merchant_id, 10_000))

        assert response.status_code == 503, response.text
        body = response.json()
        assert body["error"] == "GATEWAY_UNAVAILABLE"
        assert body["message"]
        assert body["requestId"]
        payment = body["payment"]
        assert payment["status"] == "failed"
        assert payment["failureCode"]
        current = await stats_of(client, user)
        assert current["todaySpent"] == 0
        assert current["remainingToday"] == current["dailyLimit"]
        payment_id = payment["paymentId"]
        assert await documents(app, "transactions", paymentId=payment_id) == []
        events = await documents(app, "events", paymentId=payment_id)
        assert [event["type"] for event in events] == ["payment.failed"]
        stored = await documents(app, "payments", _id=payment_id)
        assert [doc["status"] for doc in stored] == ["failed"]


# --- Redis goes away ------------------------------------------------------------------------


async def test_create_without_redis_is_503_and_writes_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # A redis-server of this test's own, so it can be stopped without harming the others'.
    with redis_server(tmp_path, pytest.fail) as redis:
        async with running(make_settings(redis_url=redis.url)) as (app, client):
            user, merchant = await user_and_merchant(client)
            redis.process.terminate()
            redis.process.wait(timeout=10)

            response = await post_payment(client, user, payment_body(merchant.merchant_id, 10_000))

            assert response.status_code == 503, response.text
            body = response.json()
            assert set(body) == {"error", "message", "requestId"}
            assert body["error"] == "SERVICE_UNAVAILABLE"
            assert body["message"]
            assert body["requestId"] == response.headers["X-Request-ID"]
            assert await documents(app, "payments") == []
            assert await documents(app, "daily_spending") == []
            assert await documents(app, "transactions") == []
            assert await documents(app, "events") == []
            assert app.state.sandbox.state.ledger.charge_attempts == {}
