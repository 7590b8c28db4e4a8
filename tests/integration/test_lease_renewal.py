"""Short leases, renewed while their work runs: an event's delivery lease, a payment's
reconciliation lease and an idempotency lock each outlive their TTL while the work that holds
them is still running (another worker cannot take them over), and stop being renewed once it
ends — or at their longest hold, or with a request that was cancelled.

The TTLs are shortened here (seconds instead of the production 10 s) so the tests are quick;
what they show does not depend on the length."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from payments_api.config.redis import create_redis
from payments_api.config.settings import Settings
from payments_api.errors import ConflictError
from payments_api.services.events import EventDispatcher
from payments_api.services.idempotency import IdempotencyService, KeyLock, StoredResult
from payments_api.services.reconciliation import Reconciler
from payments_api.utils import workers
from payments_api.utils.clock import as_utc, utcnow
from tests.fixtures.apps import running
from tests.fixtures.factories import create_merchant, register_user
from tests.fixtures.payments import (
    GatewayGate,
    collection,
    documents,
    new_key,
    open_shop,
    pay,
    payment_body,
    post_payment,
)
from tests.fixtures.reconciliation import reconciler_for
from tests.fixtures.servers import Receiver

LEASE = 1.5
"""The shortened TTL of every lease here; renewed every third of it."""
STEPS = 400
"""Bound on every wait loop below (each step sleeps 0.05 s)."""

RENEWAL_TASK = "renew idempotency lock"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """A short gateway timeout, so an amount ending 408 leaves its payment pending quickly."""
    return make_settings(gateway_timeout_seconds=0.2)


async def wait_for(predicate: Callable[[], bool]) -> bool:
    for _ in range(STEPS):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def stored(app: FastAPI, name: str, doc_id: str) -> dict[str, Any]:
    [found] = await documents(app, name, _id=doc_id)
    return found


# --- event delivery ---------------------------------------------------------------------------


def dispatcher(app: FastAPI, worker_id: str) -> EventDispatcher:
    s = app.state.services
    return EventDispatcher(
        s.settings, s.database, s.redis, s.webhooks, s.metrics, worker_id=worker_id
    )


async def test_an_event_lease_is_renewed_while_its_delivery_runs_so_no_one_else_takes_it(
    client: httpx.AsyncClient,
    app: FastAPI,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(workers, "LEASE_SECONDS", LEASE)
    monkeypatch.setattr(workers, "BATCH", 1)  # one event per pass: this one
    merchant = await create_merchant(client, webhookUrl=receiver.url)
    user = await register_user(client)
    payment = await pay(client, user, merchant.merchant_id, 7_000)
    [event] = await documents(app, "events", paymentId=payment["paymentId"])
    receiver.delay = LEASE * 3  # the receiver answers long after the first lease ran out
    holder = dispatcher(app, "dispatcher-a")
    other = dispatcher(app, "dispatcher-b")

    delivering = asyncio.create_task(holder.run_once())
    try:
        assert await wait_for(lambda: receiver.connections >= 1)
        claimed_at = latest_try = utcnow()
        held = await stored(app, "events", event["_id"])
        # The shortened lease is the one in force: with the production one, no one could take
        # the event over in the time below whether it was renewed or not.
        assert held["lockedBy"] == "dispatcher-a"
        assert as_utc(held["lockedUntil"]) <= utcnow() + timedelta(seconds=LEASE)
        for _ in range(STEPS):  # until the receiver answers, LEASE * 3 from now
            if delivering.done():
                break
            assert await other.run_once() == 0, "a live delivery was taken over"
            latest_try = utcnow()
            await asyncio.sleep(0.1)
        assert await delivering == 1
    finally:
        delivering.cancel()

    assert latest_try - claimed_at > timedelta(seconds=LEASE * 1.5)  # tried past the TTL
    assert receiver.connections == 1
    after = await stored(app, "events", event["_id"])
    assert after["status"] == "delivered"
    assert after["lockedBy"] is None


# --- reconciliation --------------------------------------------------------------------------


def reconciler(app: FastAPI, worker_id: str) -> Reconciler:
    return reconciler_for(app, worker_id=worker_id)


async def left_pending(app: FastAPI, client: httpx.AsyncClient) -> str:
    """A payment whose outcome the gateway left unknown (…503), old enough to reconcile."""
    shop = await open_shop(client)
    response = await post_payment(client, shop.user, payment_body(shop.merchant.merchant_id, 9_503))
    assert response.status_code == 202, response.text
    payment_id: str = response.json()["payment"]["paymentId"]
    long_ago = utcnow() - timedelta(seconds=app.state.settings.reconcile_after_seconds * 2)
    await collection(app, "payments").update_one(
        {"_id": payment_id}, {"$set": {"updatedAt": long_ago, "createdAt": long_ago}}
    )
    return payment_id


async def test_a_reconciliation_lease_is_renewed_while_its_payment_is_handled_then_left(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "LEASE_SECONDS", LEASE)
    async with running(make_settings(gateway_timeout_seconds=60)) as (app, client):
        await held_reconciliation_keeps_its_lease(app, client)


async def held_reconciliation_keeps_its_lease(app: FastAPI, client: httpx.AsyncClient) -> None:
    payment_id = await left_pending(app, client)
    gate = GatewayGate(app)  # holds the reconciler's lookup at the gateway
    holder = reconciler(app, "reconciler-a")
    other = reconciler(app, "reconciler-b")

    handling = asyncio.create_task(holder.run_once())
    trying: asyncio.Task[int] | None = None
    try:
        assert await wait_for(lambda: gate.calls >= 1 or handling.done())
        assert gate.calls == 1
        claimed = await stored(app, "payments", payment_id)
        await asyncio.sleep(LEASE * 2)  # past the lease it was claimed with
        renewed = await stored(app, "payments", payment_id)
        assert renewed["reconcileLockedUntil"] > claimed["reconcileLockedUntil"]
        trying = asyncio.create_task(other.run_once())
        assert await wait_for(lambda: (trying is not None and trying.done()) or gate.calls > 1)
        assert gate.calls == 1  # the other reconciler never got as far as the gateway
        assert trying.result() == 0
    finally:
        gate.open()
        await asyncio.wait({handling} | ({trying} if trying else set()), timeout=60)

    assert handling.result() == 1
    after = await stored(app, "payments", payment_id)
    assert after["status"] != "pending"  # settled, whichever way the gateway's answer went
    await asyncio.sleep(LEASE)  # three beats: a renewal still running would move it
    again = await stored(app, "payments", payment_id)
    assert again["reconcileLockedUntil"] == after["reconcileLockedUntil"]


# --- idempotency locks -----------------------------------------------------------------------


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = create_redis(settings)
    try:
        yield client
    finally:
        await client.aclose()


def locks(redis: Redis, *, max_hold_seconds: float = 60.0) -> IdempotencyService:
    return IdempotencyService(redis, max_hold_seconds=max_hold_seconds, lock_ttl_seconds=LEASE)


async def taken_by_another(service: IdempotencyService, key: str) -> bool:
    """Whether another request for `key` is refused with 409 (the lock is still held)."""
    try:
        claim = await service.begin("pay:usr_test", key, "fingerprint")
    except ConflictError:
        return True
    assert isinstance(claim, KeyLock)
    await service.abandon(claim)
    return False


async def test_an_idempotency_lock_outlives_its_ttl_while_the_request_runs(redis: Redis) -> None:
    service = locks(redis)
    key = new_key()
    claim = await service.begin("pay:usr_test", key, "fingerprint")
    assert isinstance(claim, KeyLock)

    await asyncio.sleep(LEASE * 2.5)
    assert await taken_by_another(service, key)

    await service.finish(claim, StoredResult("fingerprint", "pay_1"))
    replay = await service.begin("pay:usr_test", key, "fingerprint")
    assert isinstance(replay, StoredResult)
    assert claim.renewal is not None
    assert not claim.renewal.running


async def test_an_abandoned_lock_is_free_at_once_and_no_longer_renewed(redis: Redis) -> None:
    service = locks(redis)
    key = new_key()
    claim = await service.begin("pay:usr_test", key, "fingerprint")
    assert isinstance(claim, KeyLock)
    await service.abandon(claim)
    assert claim.renewal is not None
    assert not claim.renewal.running
    assert not await taken_by_another(service, key)


async def test_a_lock_is_renewed_no_longer_than_its_longest_hold(redis: Redis) -> None:
    """A request that never finishes (stuck, or its finish lost) keeps its key only for its
    longest hold plus one TTL."""
    service = locks(redis, max_hold_seconds=LEASE)
    key = new_key()
    claim = await service.begin("pay:usr_test", key, "fingerprint")
    assert isinstance(claim, KeyLock)
    assert await taken_by_another(service, key)
    assert await wait_for(lambda: claim.renewal is not None and not claim.renewal.running)
    await assert_freed(service, key)


async def test_the_lock_of_a_cancelled_request_is_no_longer_renewed(redis: Redis) -> None:
    """The request's task ends without finish or abandon (its client went away, the server
    is stopping): the renewal ends with it, and the key is free a TTL later, long before the
    longest hold."""
    service = locks(redis, max_hold_seconds=3600)
    key = new_key()
    claimed: list[KeyLock] = []

    async def request() -> None:
        claim = await service.begin("pay:usr_test", key, "fingerprint")
        assert isinstance(claim, KeyLock)
        claimed.append(claim)
        await asyncio.sleep(3600)

    task = asyncio.create_task(request())
    assert await wait_for(lambda: bool(claimed))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [claim] = claimed
    assert claim.renewal is not None
    assert await wait_for(lambda: claim.renewal is not None and not claim.renewal.running)
    await assert_freed(service, key)


async def assert_freed(service: IdempotencyService, key: str) -> None:
    """The key can be taken by another request within STEPS polls."""
    for _ in range(STEPS):
        if not await taken_by_another(service, key):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} is still held after {STEPS} polls")


def renewals_running() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == RENEWAL_TASK and not t.done()]


async def test_every_create_and_refund_outcome_stops_renewing_its_lock(
    make_settings: Callable[..., Settings],
) -> None:
    """Completed, declined, pending, refused by the daily limit, replayed, refunded: each
    request's lock renewal has ended when its answer is out (the request flows call finish or
    abandon; the client here runs in this test's task, which does not end in between)."""
    async with running(make_settings(gateway_timeout_seconds=0.2, default_daily_limit=50_000)) as (
        _app,
        client,
    ):
        shop = await open_shop(client)
        body = payment_body(shop.merchant.merchant_id, 10_000)
        key = new_key()
        answers = [
            await post_payment(client, shop.user, body, key),
            await post_payment(client, shop.user, body, key),
            await post_payment(client, shop.user, payment_body(shop.merchant.merchant_id, 10_402)),
            await post_payment(client, shop.user, payment_body(shop.merchant.merchant_id, 10_408)),
            await post_payment(client, shop.user, payment_body(shop.merchant.merchant_id, 45_000)),
        ]
        assert [a.status_code for a in answers] == [201, 200, 402, 202, 422]
        paid = answers[0].json()["payment"]["paymentId"]
        refunded = await client.post(
            f"/api/v1/payments/{paid}/refund",
            json={"amount": 1_000, "reason": "one returned"},
            headers={**shop.merchant.headers, "Idempotency-Key": new_key()},
        )
        assert refunded.status_code == 200, refunded.text
        assert renewals_running() == []
