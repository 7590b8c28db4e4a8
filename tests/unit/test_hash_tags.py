"""The keys one Redis script or MULTI touches share a hash slot (on a Redis Cluster anything
else is answered CROSSSLOT): built by the services' own key functions, hashed as a cluster
hashes them (redis-py's `key_slot`, CRC16 of the first `{…}`)."""

from __future__ import annotations

import pytest
from limits import parse
from redis.crc import key_slot

from payments_api.controllers.cached_read import read_prefetch_key
from payments_api.services import idempotency
from payments_api.services.idempotency import key_scope
from payments_api.services.payment_cache import cache_key
from payments_api.services.rate_limits import RateLimiter
from payments_api.services.stats import stats_key
from payments_api.utils import ids
from payments_api.utils.cache import hash_tag

USER = ids.user_id()
MERCHANT = ids.merchant_id()
PAYMENT = ids.payment_id()


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


def counter_of(caller: str) -> str:
    """The rate-limit counter of `caller` (`user:{usr_…}` as the middleware names callers);
    naming it needs no Redis."""
    return RateLimiter(None, parse("1000/15minutes")).counter_key(caller)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "reader"), [("user", USER), ("merchant", MERCHANT)])
def test_the_cached_read_counts_and_prefetches_in_the_callers_slot(kind: str, reader: str) -> None:
    scope = {"method": "GET", "path": f"/api/v1/payments/{PAYMENT}"}
    prefetch = read_prefetch_key(scope, reader)

    assert prefetch == cache_key(reader, PAYMENT)
    assert slot(counter_of(f"{kind}:{hash_tag(reader)}")) == slot(prefetch)


def test_the_users_entry_and_stats_share_a_slot() -> None:
    """A change drops the user's cached stats beside the user's cache entry."""
    assert slot(stats_key(USER)) == slot(cache_key(USER, PAYMENT))


@pytest.mark.parametrize("key", ["order-1", "a{b}c", "{usr_other}", "}{", "{}"])
@pytest.mark.parametrize("purpose", ["pay", "refund", "capture"])
def test_an_idempotency_keys_result_and_lock_share_the_owners_slot(purpose: str, key: str) -> None:
    """Whatever braces the client's key holds: the owner's tag comes first."""
    scope = key_scope(purpose, USER)
    result, lock = idempotency._result_key(scope, key), idempotency._lock_key(scope, key)

    assert slot(result) == slot(lock) == slot(hash_tag(USER))


def test_owners_are_spread_over_slots() -> None:
    """A tag per owner, not one tag for everything: the keys of many users use many slots."""
    assert len({slot(stats_key(ids.user_id())) for _ in range(50)}) > 40
