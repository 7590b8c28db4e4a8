"""The read cache of payments: `payment:details:<id>` holds the contract's payment object.

Writers store the state they just committed, readers store what they read; a version number
(bumped on every change) makes sure an older state never replaces a newer one, so a read never
goes back behind a change the caller saw succeed.
"""

from __future__ import annotations

import json

from redis.asyncio import Redis
from redis.exceptions import RedisError

from payments_api.config.redis import command_deadline
from payments_api.models.payment import Payment, public_view
from payments_api.utils.cache import SET_IF_NEWER, LuaScript, versioned_payload
from payments_api.utils.logger import get_logger

logger = get_logger("payment-cache")

CACHE_TTL_MS = 60_000


def cache_key(payment_id: str) -> str:
    return f"payment:details:{payment_id}"


class PaymentCache:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._set_if_newer = LuaScript(redis, SET_IF_NEWER)

    async def get(self, payment_id: str) -> str | None:
        """The cached payment as JSON, or None (a Redis failure reads as a miss)."""
        try:
            raw = await self.redis.get(cache_key(payment_id))
        except (RedisError, OSError) as exc:
            logger.warning("payment cache unavailable", error=type(exc).__name__)
            return None
        return versioned_payload(raw)

    async def put(self, payment: Payment, *, stale: tuple[str, ...] = ()) -> str:
        """Store this state unless a newer one is there; returns its JSON. `stale`: other
        keys the same change made stale (the user's cached stats), dropped in the same round
        trip. Should that round trip fail, the entry is dropped (no older state stays to be
        read) and so is each stale key, one by one."""
        payload = json.dumps(public_view(payment), separators=(",", ":"))
        keys, args = [cache_key(payment.id)], [payment.version, payload, CACHE_TTL_MS]
        try:
            if stale:
                with command_deadline():  # a pipeline's own
                    await self._set_if_newer.then_delete(keys, args, stale)
            else:
                await self._set_if_newer(keys, args)
        except (RedisError, OSError) as exc:
            logger.warning("could not cache payment", error=type(exc).__name__)
            for key in (cache_key(payment.id), *stale):
                await self._drop(key)
        return payload

    async def forget(self, payment_id: str) -> None:
        await self._drop(cache_key(payment_id))

    async def _drop(self, key: str) -> None:
        try:
            await self.redis.delete(key)
        except (RedisError, OSError) as exc:
            logger.warning("could not drop a stale cache entry", key=key, error=type(exc).__name__)
