"""Creating a payment when something breaks: a slow gateway, a gateway 5xx, a gateway nobody
listens on, and Redis going away mid-life."""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis import Redis

from payments_api.app import create_app
from payments_api.config.settings import Settings
from tests.fixtures.factories import RegisteredUser, create_merchant, register_user

PAYMENTS = "/api/v1/payments"
STATS = "/api/v1/users/me/stats"

_keys = itertools.count(1)


def new_key() -> str:
    return f"fault-test-{next(_keys)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def private_redis_server(workdir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own (so it can be stopped without harming the others'),
    started like the session's in conftest; killed at the end if the test has not."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with Redis(host="127.0.0.1", port=port) as probe:
            deadline = time.monotonic() + 10
            while True:
                try:
                    probe.ping()
                    break
                except Exception:
                    if time.monotonic() > deadline or process.poll() is not None:
                        pytest.fail("the private redis-server did not start")
                    time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def payment_body(merchant_id: str, amount: int = 10_000) -> dict[str, Any]:
    return {
        "amount": amount,
        "merchantId": merchant_id,
        "paymentMethod": "card",
        "productName": "Cheesecake",
    }


async def pay(
    client: httpx.AsyncClient, user: RegisteredUser, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return await client.post(
        PAYMENTS, json=body, headers={**user.headers, "Idempotency-Key": key or new_key()}
    )


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


async def stats(client: httpx.AsyncClient, user: RegisteredUser) -> dict[str, Any]:
    response = await client.get(STATS, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()["stats"]
    return body


# --- the gateway's answer does not come in time ---------------------------------------------


async def test_gateway_timeout_leaves_the_payment_pending_with_its_hold(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(gateway_timeout_seconds=0.3)) as (app, client):
        user = await register_user(client)
        merchant = await create_merchant(client)

        response = await pay(client, user, payment_body(merchant.merchant_id, 10_408))

        assert response.status_code == 202, response.text
        body = response.json()
        assert body["success"] is True
        payment = body["payment"]
        assert payment["status"] == "pending"
        assert payment["completedAt"] is None
        assert payment["failureCode"] is None
        payment_id = payment["paymentId"]
        assert (await stats(client, user))["todaySpent"] == 10_408
        ledger = app.state.sandbox.state.ledger
        assert ledger.charges_made == 1
        assert ledger.charges[payment_id].status == "approved"
        assert ledger.charges[payment_id].amount == 10_408
        polled = await client.get(f"{PAYMENTS}/{payment_id}", headers=user.headers)
        assert polled.status_code == 200
        assert polled.json()["payment"]["status"] == "pending"
        stored = await find(app, "payments", _id=payment_id)
        assert [doc["status"] for doc in stored] == ["pending"]


async def test_gateway_5xx_leaves_the_payment_pending(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user = await register_user(client)
    merchant = await create_merchant(client)

    response = await pay(client, user, payment_body(merchant.merchant_id, 10_503))

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
        user = await register_user(client)
        merchant = await create_merchant(client)

        response = await pay(client, user, payment_body(merchant.merchant_id, 10_000))

        assert response.status_code == 503, response.text
        body = response.json()
        assert body["error"] == "GATEWAY_UNAVAILABLE"
        assert body["message"]
        assert body["requestId"]
        payment = body["payment"]
        assert payment["status"] == "failed"
        assert payment["failureCode"]
        current = await stats(client, user)
        assert current["todaySpent"] == 0
        assert current["remainingToday"] == current["dailyLimit"]
        payment_id = payment["paymentId"]
        assert await find(app, "transactions", paymentId=payment_id) == []
        events = await find(app, "events", paymentId=payment_id)
        assert [event["type"] for event in events] == ["payment.failed"]
        stored = await find(app, "payments", _id=payment_id)
        assert [doc["status"] for doc in stored] == ["failed"]


# --- Redis goes away ------------------------------------------------------------------------


async def test_create_without_redis_is_503_and_writes_nothing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with private_redis_server(tmp_path) as (url, redis_process):
        async with running(make_settings(redis_url=url)) as (app, client):
            user = await register_user(client)
            merchant = await create_merchant(client)
            redis_process.terminate()
            redis_process.wait(timeout=10)

            response = await pay(client, user, payment_body(merchant.merchant_id, 10_000))

            assert response.status_code == 503, response.text
            body = response.json()
            assert set(body) == {"error", "message", "requestId"}
            assert body["error"] == "SERVICE_UNAVAILABLE"
            assert body["message"]
            assert body["requestId"] == response.headers["X-Request-ID"]
            assert await find(app, "payments") == []
            assert await find(app, "daily_spending") == []
            assert await find(app, "transactions") == []
            assert await find(app, "events") == []
            assert app.state.sandbox.state.ledger.charge_attempts == {}
