"""The read cache of payments: the contract's payment object, once for each of its two readers.

A payment is read by its user (polling it until it settles) and by its merchant, and its read
costs the rate limiter's one Redis round trip only when the entry lies in the caller's own hash
slot, beside the caller's rate-limit counter (`services/rate_limits.py`). So each payment has
two entries, `payment:details:{usr_…}:pay_…` and `payment:details:{mch_…}:pay_…`: a reader
finds the one under its own id, and only its own payments are there (an admin reads through
the database). Writers store the state they just committed in both, readers store what they
read; a version number (bumped on every change) makes sure an older state never replaces a
newer one, so a read never goes back behind a change the caller saw succeed.
"""

from __future__ import annotations

import json

from redis.exceptions import RedisError

from payments_api.config.redis import RedisClient, command_deadline
from payments_api.models.payment import Payment, public_view
from payments_api.utils.cache import SET_IF_NEWER, LuaScript, hash_tag, versioned_payload
from payments_api.utils.logger import get_logger

logger = get_logger("payment-cache")

CACHE_TTL_MS = 60_000


def cache_key(reader_id: str, payment_id: str) -> str:
    """The entry of `payment_id` that `reader_id` (its user or its merchant) reads."""
    return f"payment:details:{hash_tag(reader_id)}:{payment_id}"


def entry_keys(payment: Payment) -> tuple[str, str]:
    """Both entries of a payment: its user's and its merchant's."""
    return cache_key(payment.user_id, payment.id), cache_key(payment.merchant_id, payment.id)


class PaymentCache:
    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        self._set_if_newer = LuaScript(redis, SET_IF_NEWER)

    async def get(self, reader_id: str, payment_id: str) -> str | None:
        """The payment as JSON from `reader_id`'s entry, or None (a Redis failure reads as a
        miss)."""
        try:
            raw = await self.redis.get(cache_key(reader_id, payment_id))
        except (RedisError, OSError) as exc:
            logger.warning("payment cache unavailable", error=type(exc).__name__)
            return None
        return versioned_payload(raw)

    async def put(self, payment: Payment, *, stale: tuple[str, ...] = ()) -> str:
        """Store this state in both entries unless a newer one is there; returns its JSON.
        `stale`: other keys the same change made stale (the user's cached stats), dropped in
        the same round trip. Should that round trip fail, the entries are dropped (no older
        state stays to be read) and so is each stale key, one by one."""
        payload = json.dumps(public_view(payment), separators=(",", ":"))
        entries = entry_keys(payment)
        args = [payment.version, payload, CACHE_TTL_MS]
        try:
            with command_deadline():  # a pipeline's own
                await self._set_if_newer.on_each(
                    [[key] for key in entries], args, then_delete=stale
                )
        except (RedisError, OSError) as exc:
            logger.warning("could not cache payment", error=type(exc).__name__)
            for key in (*entries, *stale):
                await self._drop(key)
        return payload

    async def forget(self, payment_id: str, *reader_ids: str) -> None:
        """Drop the entries of `payment_id` that these readers (its user, its merchant) read."""
        for reader_id in reader_ids:
            await self._drop(cache_key(reader_id, payment_id))

    async def _drop(self, key: str) -> None:
        try:
            await self.redis.delete(key)
        except (RedisError, OSError) as exc:
            logger.warning("could not drop a stale cache entry", key=key, error=type(exc).__name__)
