"""Idempotency of `POST /api/v1/payments`: replays, reuse, scope, in-flight requests and the
MongoDB unique index that answers when Redis has forgotten a key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from tests.fixtures.apps import running
from tests.fixtures.factories import create_merchant, register_user
from tests.fixtures.payments import (
    PAYMENTS,
    GatewayGate,
    documents,
    new_key,
    payment_body,
    post_payment,
    user_and_merchant,
)
from tests.fixtures.servers import SyncRedisClient

REPLAY_MESSAGE = "Payment already processed"
DAY_SECONDS = 24 * 3600


async def payments_of(app: FastAPI, user_id: str) -> list[dict[str, Any]]:
    return await documents(app, "payments", userId=user_id)


def charges_made(app: FastAPI) -> int:
    count: int = app.state.sandbox.state.ledger.charges_made
    return count


def assert_replay(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers.get("Idempotent-Replayed") == "true"
    body: dict[str, Any] = response.json()
    return body


# --- replay of a finished request -----------------------------------------------------------


async def test_same_key_and_body_after_completion_replays_200_with_the_payment(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    first = await post_payment(client, user, payment_body(merchant.merchant_id), key)
    assert first.status_code == 201, first.text

    second = await post_payment(client, user, payment_body(merchant.merchant_id), key)

    body = assert_replay(second)
    assert body["success"] is True
    assert body["message"] == REPLAY_MESSAGE
    assert body["payment"] == first.json()["payment"]
    assert len(await payments_of(app, user.user_id)) == 1
    assert charges_made(app) == 1


async def test_replay_matches_the_body_whatever_the_key_order_of_its_json(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    body = payment_body(merchant.merchant_id)
    first = await post_payment(client, user, body, key)
    assert first.status_code == 201, first.text

    second = await post_payment(client, user, dict(reversed(list(body.items()))), key)

    assert assert_replay(second)["payment"]["paymentId"] == first.json()["payment"]["paymentId"]


async def test_replay_after_a_refund_shows_the_refunded_state(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    first = await post_payment(client, user, payment_body(merchant.merchant_id, 10_000), key)
    payment_id = first.json()["payment"]["paymentId"]
    refunded = await client.post(
        f"{PAYMENTS}/{payment_id}/refund",
        json={"amount": 3_000, "reason": "one item missing"},
        headers=merchant.headers,
    )
    assert refunded.status_code == 200, refunded.text

    replay = await post_payment(client, user, payment_body(merchant.merchant_id, 10_000), key)

    payment = assert_replay(replay)["payment"]
    assert payment["paymentId"] == payment_id
    assert payment["status"] == "partially_refunded"
    assert payment["refundedAmount"] == 3_000


async def test_replay_after_a_cancel_shows_the_cancelled_state(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    first = await post_payment(client, user, payment_body(merchant.merchant_id), key)
    payment_id = first.json()["payment"]["paymentId"]
    cancelled = await client.post(
        f"{PAYMENTS}/{payment_id}/cancel", json={"reason": "changed my mind"}, headers=user.headers
    )
    assert cancelled.status_code == 200, cancelled.text

    replay = await post_payment(client, user, payment_body(merchant.merchant_id), key)

    payment = assert_replay(replay)["payment"]
    assert payment["paymentId"] == payment_id
    assert payment["status"] == "cancelled"
    assert payment["cancelReason"] == "changed my mind"
    assert payment["cancelledAt"] is not None
    assert charges_made(app) == 1


async def test_replay_of_a_declined_payment_repeats_the_original_402_body(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    first = await post_payment(client, user, payment_body(merchant.merchant_id, 7_402), key)
    assert first.status_code == 402, first.text
    assert "Idempotent-Replayed" not in first.headers

    second = await post_payment(client, user, payment_body(merchant.merchant_id, 7_402), key)

    body = assert_replay(second, 402)
    original = first.json()
    assert body["error"] == original["error"] == "PAYMENT_DECLINED"
    assert body["message"] == original["message"]
    assert body["payment"] == original["payment"]
    assert body["payment"]["status"] == "failed"
    assert body["requestId"]
    payment_id = original["payment"]["paymentId"]
    assert app.state.sandbox.state.ledger.charge_attempts == {payment_id: 1}
    assert len(await payments_of(app, user.user_id)) == 1


# --- reuse with another body ----------------------------------------------------------------


async def test_same_key_with_a_different_body_is_422_idempotency_key_reused(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    first = await post_payment(client, user, payment_body(merchant.merchant_id, 10_000), key)
    assert first.status_code == 201, first.text

    changed_amount = await post_payment(
        client, user, payment_body(merchant.merchant_id, 10_001), key
    )
    changed_name = await post_payment(
        client, user, payment_body(merchant.merchant_id, 10_000, productName="Bagel"), key
    )

    for response in (changed_amount, changed_name):
        assert response.status_code == 422, response.text
        assert response.json()["error"] == "IDEMPOTENCY_KEY_REUSED"
        assert response.json()["message"]
        assert "Idempotent-Replayed" not in response.headers
    assert len(await payments_of(app, user.user_id)) == 1
    assert charges_made(app) == 1


@pytest.mark.parametrize("padded", ["order-7  ", "\torder-7", " order-7\t "], ids=repr)
async def test_a_key_with_whitespace_around_it_is_the_same_key(
    client: httpx.AsyncClient, app: FastAPI, padded: str
) -> None:
    """RFC 9110: the whitespace around a field value is not part of it."""
    user, merchant = await user_and_merchant(client)
    first = await post_payment(client, user, payment_body(merchant.merchant_id), "order-7")
    assert first.status_code == 201, first.text

    second = await post_payment(client, user, payment_body(merchant.merchant_id), padded)

    assert assert_replay(second)["payment"]["paymentId"] == first.json()["payment"]["paymentId"]
    assert len(await payments_of(app, user.user_id)) == 1
    assert charges_made(app) == 1


async def test_a_key_of_only_whitespace_is_an_invalid_key(client: httpx.AsyncClient) -> None:
    user, merchant = await user_and_merchant(client)
    response = await post_payment(client, user, payment_body(merchant.merchant_id), " \t ")
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "INVALID_IDEMPOTENCY_KEY"


# --- scope ----------------------------------------------------------------------------------


async def test_the_same_key_from_two_users_makes_two_payments(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    merchant = await create_merchant(client)
    alice = await register_user(client)
    bob = await register_user(client)
    key = new_key()

    for_alice = await post_payment(client, alice, payment_body(merchant.merchant_id), key)
    for_bob = await post_payment(client, bob, payment_body(merchant.merchant_id), key)

    assert for_alice.status_code == 201, for_alice.text
    assert for_bob.status_code == 201, for_bob.text
    assert "Idempotent-Replayed" not in for_bob.headers
    alice_payment = for_alice.json()["payment"]
    bob_payment = for_bob.json()["payment"]
    assert alice_payment["paymentId"] != bob_payment["paymentId"]
    assert alice_payment["userId"] == alice.user_id
    assert bob_payment["userId"] == bob.user_id
    assert charges_made(app) == 2


# --- a key whose first request created nothing ----------------------------------------------


async def test_key_of_a_request_that_failed_validation_can_be_used_again(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    invalid = await post_payment(client, user, payment_body(merchant.merchant_id, 0), key)
    assert invalid.status_code == 422, invalid.text

    valid = await post_payment(client, user, payment_body(merchant.merchant_id, 10_000), key)

    assert valid.status_code == 201, valid.text
    assert "Idempotent-Replayed" not in valid.headers
    assert len(await payments_of(app, user.user_id)) == 1


async def test_key_of_a_request_over_the_daily_limit_can_be_used_again(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(default_daily_limit=50_000)) as (app, client):
        user, merchant = await user_and_merchant(client)
        key = new_key()
        over = await post_payment(client, user, payment_body(merchant.merchant_id, 60_000), key)
        assert over.status_code == 422, over.text
        assert over.json()["error"] == "DAILY_LIMIT_EXCEEDED"
        assert over.json()["remainingToday"] == 50_000
        assert await payments_of(app, user.user_id) == []

        within = await post_payment(client, user, payment_body(merchant.merchant_id, 20_000), key)

        assert within.status_code == 201, within.text
        assert "Idempotent-Replayed" not in within.headers
        assert len(await payments_of(app, user.user_id)) == 1


async def test_key_of_a_request_to_an_unknown_merchant_can_be_used_again(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    missing = await post_payment(client, user, payment_body("mch_01HZZZZZZZZZZZZZZZZZZZZZZZ"), key)
    assert missing.status_code == 404, missing.text

    retried = await post_payment(client, user, payment_body(merchant.merchant_id), key)

    assert retried.status_code == 201, retried.text


# --- in flight ------------------------------------------------------------------------------


@pytest.mark.race
async def test_same_key_while_the_first_is_in_flight_is_409_with_retry_after(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    body = payment_body(merchant.merchant_id, 10_000)
    gate = GatewayGate(app)  # the first request waits at the gateway until the gate opens
    first = await gate.catch(post_payment(client, user, body, key))
    gate.arrived.clear()  # set again only if another request reaches the gateway
    sent = asyncio.ensure_future(post_payment(client, user, body, key))
    reached = asyncio.ensure_future(gate.arrived.wait())
    try:
        done, _ = await asyncio.wait({sent, reached}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reached.cancel()
        gate.open()
        first_response, second = await asyncio.gather(first, sent)

    assert sent in done, f"the second request went on to the gateway: {second.text}"
    assert second.status_code == 409, second.text
    assert second.json()["error"] == "IDEMPOTENCY_KEY_IN_USE"
    assert int(second.headers["Retry-After"]) >= 1
    assert "Idempotent-Replayed" not in second.headers
    assert gate.calls == 1  # the second never reached the gateway
    assert first_response.status_code == 201, first_response.text
    paid = first_response.json()["payment"]
    assert paid["status"] == "completed"
    assert len(await payments_of(app, user.user_id)) == 1
    assert charges_made(app) == 1

    after = await post_payment(client, user, body, key)
    replay = assert_replay(after)
    assert replay["message"] == REPLAY_MESSAGE
    assert replay["payment"]["paymentId"] == paid["paymentId"]
    assert replay["payment"]["status"] == "completed"
    assert gate.calls == 1
    assert charges_made(app) == 1


# --- Redis forgets --------------------------------------------------------------------------


async def test_replay_comes_from_the_database_when_redis_forgot_the_key(
    client: httpx.AsyncClient, app: FastAPI, forget_redis: Callable[[], None]
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    first = await post_payment(client, user, payment_body(merchant.merchant_id), key)
    assert first.status_code == 201, first.text
    forget_redis()

    second = await post_payment(client, user, payment_body(merchant.merchant_id), key)

    body = assert_replay(second)
    assert body["message"] == REPLAY_MESSAGE
    assert body["payment"]["paymentId"] == first.json()["payment"]["paymentId"]
    assert body["payment"]["status"] == "completed"
    assert len(await payments_of(app, user.user_id)) == 1
    assert charges_made(app) == 1


async def test_different_body_is_refused_when_redis_forgot_the_key(
    client: httpx.AsyncClient, app: FastAPI, forget_redis: Callable[[], None]
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    first = await post_payment(client, user, payment_body(merchant.merchant_id, 10_000), key)
    assert first.status_code == 201, first.text
    forget_redis()

    second = await post_payment(client, user, payment_body(merchant.merchant_id, 20_000), key)

    assert second.status_code == 422, second.text
    assert second.json()["error"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(await payments_of(app, user.user_id)) == 1
    assert charges_made(app) == 1


async def test_declined_replay_comes_from_the_database_when_redis_forgot_the_key(
    client: httpx.AsyncClient, app: FastAPI, forget_redis: Callable[[], None]
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key()
    first = await post_payment(client, user, payment_body(merchant.merchant_id, 3_402), key)
    assert first.status_code == 402, first.text
    forget_redis()

    second = await post_payment(client, user, payment_body(merchant.merchant_id, 3_402), key)

    body = assert_replay(second, 402)
    assert body["error"] == "PAYMENT_DECLINED"
    assert body["payment"] == first.json()["payment"]


async def test_finished_result_is_kept_in_redis_for_at_least_24_hours(
    client: httpx.AsyncClient, sync_redis: SyncRedisClient
) -> None:
    user, merchant = await user_and_merchant(client)
    key = new_key() + "-ttl-probe"
    first = await post_payment(client, user, payment_body(merchant.merchant_id), key)
    assert first.status_code == 201, first.text

    stored = [name for name in sync_redis.scan_iter(match=f"*{key}*") if "lock" not in name]
    ttls = [sync_redis.ttl(name) for name in stored]

    assert stored, "no idempotency record for the key in Redis"
    assert all(ttl >= DAY_SECONDS for ttl in ttls), dict(zip(stored, ttls, strict=True))
