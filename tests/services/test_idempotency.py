"""IdempotencyService.claim on the real Redis: one request at a time holds a key; what a block
made (`claim.made`) and finished cleanly is replayed to every later request with the same
body; anything else lets the key go, so that a retry runs afresh; another body is refused; a
result `still_replayable` vetoes is forgotten; without Redis nothing runs."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from payments_api.config.redis import create_redis
from payments_api.config.settings import Settings
from payments_api.services.idempotency import (
    IN_FLIGHT_RETRY_AFTER_SECONDS,
    RESULT_TTL_SECONDS,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    IdempotencyService,
    IdempotencyStoreUnavailable,
    StoredResult,
    key_scope,
)
from payments_api.services.registry import Services

SCOPE = key_scope("pay", "usr_service_test")
KEY = "order-7"
BODY = "fingerprint-of-the-first-body"
OTHER_BODY = "fingerprint-of-another-body"
MADE = "pay_made_by_the_first_request"
SHORT_LOCK_TTL = 0.3


@pytest.fixture
def redis(services: Services) -> Redis:
    return services.redis


@pytest.fixture
def idempotency(redis: Redis) -> IdempotencyService:
    return IdempotencyService(redis, max_hold_seconds=30)


async def finished(idempotency: IdempotencyService, made: str = MADE, body: str = BODY) -> None:
    """A request with KEY that made `made` and ended cleanly."""
    async with idempotency.claim(SCOPE, KEY, body) as claim:
        assert claim.lock is not None
        claim.made(made)


async def takes_the_lock(idempotency: IdempotencyService, body: str = BODY) -> bool:
    """Whether a new request with KEY runs (holds the lock), rather than replaying; it makes
    nothing, so the key is let go again."""
    async with idempotency.claim(SCOPE, KEY, body) as claim:
        return claim.lock is not None and claim.replay is None


class Refused(Exception):
    """What a request's block raised."""


def closed_port() -> int:
    """A loopback port nothing listens on (taken from the OS, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- in flight --------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [BODY, OTHER_BODY], ids=["same-body", "other-body"])
async def test_a_first_claim_holds_the_key_and_a_concurrent_one_is_told_to_retry(
    idempotency: IdempotencyService, body: str
) -> None:
    async with idempotency.claim(SCOPE, KEY, BODY) as first:
        assert first.lock is not None
        assert first.replay is None

        with pytest.raises(IdempotencyKeyInUse) as in_use:
            async with idempotency.claim(SCOPE, KEY, body):
                pytest.fail("a second request ran while the first held the key")

    assert in_use.value.retry_after_seconds == IN_FLIGHT_RETRY_AFTER_SECONDS
    assert in_use.value.code == "IDEMPOTENCY_KEY_IN_USE"


async def test_a_key_is_held_only_within_its_scope(idempotency: IdempotencyService) -> None:
    async with idempotency.claim(SCOPE, KEY, BODY) as first:
        assert first.lock is not None
        async with idempotency.claim(key_scope("pay", "usr_someone_else"), KEY, BODY) as other:
            assert other.lock is not None
            assert other.replay is None


async def test_a_live_claim_keeps_its_lock_past_the_lock_ttl(redis: Redis) -> None:
    service = IdempotencyService(redis, max_hold_seconds=30, lock_ttl_seconds=SHORT_LOCK_TTL)
    async with service.claim(SCOPE, KEY, BODY) as claim:
        assert claim.lock is not None
        assert claim.lock.renewal is not None
        # Renewed every third of the TTL: six renewals span twice the TTL.
        for _ in range(500):
            if claim.lock.renewal.renewals >= 6:
                break
            await asyncio.sleep(0.01)
        assert claim.lock.renewal.renewals >= 6

        with pytest.raises(IdempotencyKeyInUse):
            async with service.claim(SCOPE, KEY, BODY):
                pytest.fail("the key was free while its request still ran")


# --- finished ---------------------------------------------------------------------------------


async def test_what_a_clean_block_made_is_replayed_without_a_lock(
    idempotency: IdempotencyService,
) -> None:
    await finished(idempotency)

    async with idempotency.claim(SCOPE, KEY, BODY) as replay:
        assert replay.replay == StoredResult(BODY, MADE)
        assert replay.lock is None
        # A replay holds nothing: another request with the key replays meanwhile too.
        async with idempotency.claim(SCOPE, KEY, BODY) as again:
            assert again.replay == StoredResult(BODY, MADE)


async def test_a_finished_result_is_kept_for_at_least_24_hours(
    idempotency: IdempotencyService, redis: Redis
) -> None:
    await finished(idempotency)

    ttl = await redis.ttl(f"idem:{SCOPE}:{KEY}")
    assert ttl >= 24 * 3600
    assert ttl <= RESULT_TTL_SECONDS


async def test_another_body_after_a_finished_request_is_refused_and_changes_nothing(
    idempotency: IdempotencyService,
) -> None:
    await finished(idempotency)

    with pytest.raises(IdempotencyKeyReused):
        async with idempotency.claim(SCOPE, KEY, OTHER_BODY):
            pytest.fail("a request with another body ran under a used key")

    async with idempotency.claim(SCOPE, KEY, BODY) as replay:
        assert replay.replay == StoredResult(BODY, MADE)


# --- let go -----------------------------------------------------------------------------------


@pytest.mark.parametrize("made_first", [False, True], ids=["made-nothing", "made-then-raised"])
async def test_a_block_that_raises_lets_go_of_the_key(
    idempotency: IdempotencyService, made_first: bool
) -> None:
    async def refused_request() -> None:
        async with idempotency.claim(SCOPE, KEY, BODY) as claim:
            if made_first:
                claim.made(MADE)
            raise Refused

    with pytest.raises(Refused):
        await refused_request()

    assert await takes_the_lock(idempotency)


async def test_a_block_that_ends_without_making_anything_lets_go_of_the_key(
    idempotency: IdempotencyService,
) -> None:
    async with idempotency.claim(SCOPE, KEY, BODY) as claim:
        assert claim.lock is not None

    assert await takes_the_lock(idempotency)
    # Nothing was remembered either: another body is not "reused", it simply runs.
    assert await takes_the_lock(idempotency, OTHER_BODY)


async def test_a_block_that_lost_its_lock_does_not_release_its_successors(
    idempotency: IdempotencyService, redis: Redis
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        async with idempotency.claim(SCOPE, KEY, BODY) as first:
            assert first.lock is not None
            await redis.delete(first.lock.lock_key)  # as when its lock lapsed
            second = await stack.enter_async_context(idempotency.claim(SCOPE, KEY, BODY))
            assert second.lock is not None
        # The first ended (made nothing): the second still holds the key.
        with pytest.raises(IdempotencyKeyInUse):
            async with idempotency.claim(SCOPE, KEY, BODY):
                pytest.fail("a third request ran while the second held the key")


# --- still_replayable -------------------------------------------------------------------------


async def test_a_result_vetoed_by_still_replayable_is_forgotten_and_the_key_taken_afresh(
    idempotency: IdempotencyService,
) -> None:
    await finished(idempotency)
    checked: list[StoredResult] = []

    async def did_not_happen(stored: StoredResult) -> bool:
        checked.append(stored)
        return False

    async with idempotency.claim(SCOPE, KEY, BODY, still_replayable=did_not_happen) as retry:
        assert retry.replay is None
        assert retry.lock is not None
        retry.made("pay_made_by_the_retry")

    assert checked == [StoredResult(BODY, MADE)]
    async with idempotency.claim(SCOPE, KEY, BODY) as replay:
        assert replay.replay == StoredResult(BODY, "pay_made_by_the_retry")


async def test_a_result_still_replayable_approves_is_replayed(
    idempotency: IdempotencyService,
) -> None:
    await finished(idempotency)

    async def happened(stored: StoredResult) -> bool:
        return True

    async with idempotency.claim(SCOPE, KEY, BODY, still_replayable=happened) as replay:
        assert replay.replay == StoredResult(BODY, MADE)
        assert replay.lock is None


# --- without Redis ----------------------------------------------------------------------------


@pytest.fixture
async def unreachable_redis(make_settings: Callable[..., Settings]) -> AsyncIterator[Redis]:
    client = create_redis(make_settings(redis_url=f"redis://127.0.0.1:{closed_port()}/0"))
    try:
        yield client
    finally:
        await client.aclose()


async def test_without_redis_a_claim_is_refused_before_its_block_runs(
    unreachable_redis: Redis,
) -> None:
    idempotency = IdempotencyService(unreachable_redis, max_hold_seconds=30)
    ran = False

    with pytest.raises(IdempotencyStoreUnavailable):
        async with idempotency.claim(SCOPE, KEY, BODY):
            ran = True

    assert ran is False
