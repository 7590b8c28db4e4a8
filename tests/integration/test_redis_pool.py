"""The Redis connection pool under a burst: more concurrent requests than the pool has
connections wait for one (bounded) instead of failing, so no 503 while Redis is healthy; and
a command's deadline starts once it has a connection."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from payments_api.config import redis as redis_config
from payments_api.config.redis import create_redis
from payments_api.config.settings import Settings
from tests.fixtures.apps import running
from tests.fixtures.payments import payment_body, post_payment, user_and_merchant
from tests.fixtures.relay import Relay

BURST = 350
SMALL_POOL = 32
HUNG_COMMAND_GUARD_SECONDS = 10.0


@pytest.fixture
async def redis(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Redis]:
    """The app's kind of Redis client, on a pool of two connections."""
    monkeypatch.setattr(redis_config, "MAX_CONNECTIONS", 2)
    client = create_redis(settings)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_burst_larger_than_the_redis_pool_is_served_without_a_503(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """350 concurrent creates on a pool of 32 connections: each waits its turn for one.

    The deadlines are lengthened here, and only here: with the in-memory MongoDB stand-in (a
    full scan per query) a burst this size keeps the event loop busy for seconds on a loaded
    machine, and a reply read that late would trip the deadline meant for a Redis that does
    not answer. The pool's bound on the wait is tested below with its real value."""
    monkeypatch.setattr(redis_config, "MAX_CONNECTIONS", SMALL_POOL)
    monkeypatch.setattr(redis_config, "POOL_WAIT_SECONDS", 120.0)
    monkeypatch.setattr(redis_config, "COMMAND_TIMEOUT_SECONDS", 120.0)
    settings = make_settings(rate_limit="100000/minute", log_level="warning")
    async with running(settings) as (app, client):
        assert app.state.services.redis.connection_pool.max_connections == SMALL_POOL
        user, merchant = await user_and_merchant(client)
        body = payment_body(merchant.merchant_id, 1_000)

        responses = await asyncio.gather(*(post_payment(client, user, body) for _ in range(BURST)))

        statuses = Counter(response.status_code for response in responses)
        errors = Counter(r.json().get("error") for r in responses if r.status_code != 201)
        assert statuses == {201: BURST}, (statuses, errors)
        ids = {response.json()["payment"]["paymentId"] for response in responses}
        assert len(ids) == BURST  # distinct keys, distinct payments


async def test_a_command_waits_for_a_busy_pool_longer_than_its_own_deadline(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline is for Redis to answer: time spent waiting for a connection does not
    count against it (it has POOL_WAIT_SECONDS of its own)."""
    monkeypatch.setattr(redis_config, "COMMAND_TIMEOUT_SECONDS", 0.5)
    pool = redis.connection_pool
    held = [await pool.get_connection() for _ in range(pool.max_connections)]

    async def give_back_later() -> None:
        await asyncio.sleep(1.5)  # three deadlines
        for connection in held:
            await pool.release(connection)

    releasing = asyncio.create_task(give_back_later())
    try:
        assert await redis.ping() is True
    finally:
        await releasing


@pytest.mark.parametrize("caller", ["command", "pipeline"])
async def test_the_wait_for_a_connection_is_bounded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caller: str
) -> None:
    """With every connection taken and none given back, a command (bounded by its deadline)
    and a pipeline (by the pool's own timeout) fail after POOL_WAIT_SECONDS instead of
    waiting for ever."""
    monkeypatch.setattr(redis_config, "MAX_CONNECTIONS", 2)
    monkeypatch.setattr(redis_config, "POOL_WAIT_SECONDS", 0.3)
    redis = create_redis(settings)

    async def ping() -> None:
        if caller == "command":
            await redis.ping()
        else:
            async with redis.pipeline() as pipe:
                pipe.ping()
                await pipe.execute()

    pool = redis.connection_pool
    held = [await pool.get_connection() for _ in range(pool.max_connections)]
    try:
        async with asyncio.timeout(30):  # the test's own guard, far beyond the bound
            with pytest.raises((RedisConnectionError, TimeoutError)):
                await ping()
        for connection in held:
            await pool.release(connection)
        held = []
        assert await redis.ping() is True  # the pool serves again once they are back
    finally:
        for connection in held:
            await pool.release(connection)
        await redis.aclose()


async def test_a_connection_redis_dropped_fails_one_command_and_is_replaced(
    settings: Settings,
) -> None:
    """A pooled connection that Redis closed meanwhile (a restart, an idle timeout) fails the
    command sent on it — redis-py does not send it again: Redis may have run it — and is not
    handed out again: the next command gets a fresh connection (config/redis.py keeps the
    connections given back at hand; a dead one must not stay there)."""
    redis = create_redis(settings)
    killer = create_redis(settings)
    try:
        assert await redis.ping() is True
        connection_id = await redis.client_id()
        assert await killer.client_kill_filter(_id=connection_id) == 1
        with pytest.raises(RedisConnectionError):
            await redis.set("dropped-connection-probe", "1")
        assert await redis.set("dropped-connection-probe", "1") is True
        assert await redis.client_id() != connection_id
    finally:
        await redis.aclose()
        await killer.aclose()


async def test_a_redis_that_stops_answering_fails_the_command_at_its_deadline(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis that takes the command and never answers (behind a relay holding its answers)
    fails that command with TimeoutError at COMMAND_TIMEOUT_SECONDS, not never; once Redis
    answers again, the next command is served on a fresh connection."""
    monkeypatch.setattr(redis_config, "COMMAND_TIMEOUT_SECONDS", 0.3)
    upstream = urlsplit(settings.redis_url or "").port
    assert upstream is not None
    with Relay(upstream) as relay:
        redis = create_redis(
            settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{relay.port}/0"})
        )
        try:
            assert await redis.ping() is True
            relay.hold_answers()
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(redis.get("unanswered"), HUNG_COMMAND_GUARD_SECONDS)
            assert loop.time() - started < HUNG_COMMAND_GUARD_SECONDS / 2  # its deadline, not ours
            relay.passthrough()
            assert await redis.ping() is True
        finally:
            await redis.aclose()
