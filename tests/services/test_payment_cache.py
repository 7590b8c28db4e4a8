"""PaymentCache.put with the keys a change made stale: one round trip stores the state and
drops them, in the entries of both readers (the payment's user and its merchant); when that
round trip fails, nothing older is left to be read — both entries and every stale key are
dropped one by one."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from payments_api.models.merchant import Merchant
from payments_api.models.user import User
from payments_api.services.payment_cache import PaymentCache, cache_key
from payments_api.services.registry import Services
from payments_api.services.stats import stats_key
from payments_api.utils.cache import LuaScript, versioned_payload
from tests.services.conftest import MakePayment


async def test_put_stores_the_state_and_drops_the_stale_keys(
    services: Services, user: User, merchant: Merchant, make_pending_payment: MakePayment
) -> None:
    payment = await make_pending_payment(user, merchant)
    await services.redis.hset(stats_key(user.id), "totalTransactions", "0")
    cache = PaymentCache(services.redis)

    payload = await cache.put(payment, stale=(stats_key(user.id),))

    for reader in (user.id, merchant.id):
        assert versioned_payload(await services.redis.get(cache_key(reader, payment.id))) == payload
        assert await cache.get(reader, payment.id) == payload
    assert await services.redis.exists(stats_key(user.id)) == 0


async def test_a_failed_round_trip_drops_the_entry_and_the_stale_keys(
    services: Services,
    user: User,
    merchant: Merchant,
    make_pending_payment: MakePayment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payment = await make_pending_payment(user, merchant)
    cache = PaymentCache(services.redis)
    await cache.put(payment)
    await services.redis.hset(stats_key(user.id), "totalTransactions", "0")

    async def lost(*_: object, **__: object) -> None:
        raise RedisConnectionError("the connection went away")

    monkeypatch.setattr(LuaScript, "on_each", lost)
    newer = payment.next_state(payment.updated_at)
    await cache.put(newer, stale=(stats_key(user.id),))

    entries = cache_key(user.id, payment.id), cache_key(merchant.id, payment.id)
    assert await services.redis.exists(*entries, stats_key(user.id)) == 0
