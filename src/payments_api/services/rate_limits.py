"""Counting requests against RATE_LIMIT in Redis, shared by every server process.

`limits` names the windows (`item.key_for`), knows their length and, through its asyncio
RedisStorage on the app's own connection pool, when a window another process started resets.
The count itself is one script that also fetches the key the request's route reads first.
"""

from __future__ import annotations

import time
from typing import Any

from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from redis.asyncio import Redis

from payments_api.config.redis import command_deadline
from payments_api.utils.cache import LuaScript

KEY_PREFIX = "ratelimit"
MAX_REMEMBERED_WINDOWS = 10_000

# limits' fixed window (INCRBY, EXPIRE when the window starts) fused with a GET of the one
# key the route is about to read, so the hot read costs one Redis round trip, not two.
# KEYS: counter[, prefetch]. ARGV: window seconds, cost. Returns {count[, value]}.
_HIT_AND_PREFETCH = """
local count = redis.call('incrby', KEYS[1], ARGV[2])
if tonumber(count) == tonumber(ARGV[2]) then
  redis.call('expire', KEYS[1], ARGV[1])
end
if KEYS[2] then
  return {count, redis.call('get', KEYS[2])}
end
return {count}
"""


class RateLimiter:
    """Counting for one RATE_LIMIT item on the app's Redis pool."""

    def __init__(self, redis: Redis, item: RateLimitItem) -> None:
        self.item = item
        self.expiry = item.get_expiry()
        options: dict[str, Any] = {"connection_pool": redis.connection_pool}
        self.storage = RedisStorage(
            "async+redis://", implementation="redispy", key_prefix=KEY_PREFIX, **options
        )
        self._hit = LuaScript(redis, _HIT_AND_PREFETCH)
        self._resets: dict[str, float] = {}
        self._keys: dict[str, tuple[str, str]] = {}

    def _window_keys(self, identity: str) -> tuple[str, str]:
        """The caller's window as `limits` names it and its counter's Redis key, built once
        per caller (`key_for` joins and escapes five parts)."""
        keys = self._keys.get(identity)
        if keys is None:
            if len(self._keys) >= MAX_REMEMBERED_WINDOWS:
                self._keys.clear()
            key = self.item.key_for(identity)
            keys = self._keys[identity] = (key, f"{KEY_PREFIX}:{key}")
        return keys

    async def hit(self, identity: str, prefetch_key: str | None) -> tuple[int, float, Any]:
        """Count one request: (count in this window, when it resets, the prefetched value)."""
        key, counter = self._window_keys(identity)
        keys = [counter]
        if prefetch_key:
            keys.append(prefetch_key)
        reply = await self._hit(keys=keys, args=[self.expiry, 1])
        count = int(reply[0])
        prefetched = reply[1] if len(reply) > 1 else None
        return count, await self._reset_at(key, count), prefetched

    async def _reset_at(self, key: str, count: int) -> float:
        now = time.time()
        if count == 1:
            reset_at = now + self.expiry
        else:
            known = self._resets.get(key)
            if known is not None and known > now:
                return known
            with command_deadline():  # limits' own client
                reset_at = await self.storage.get_expiry(key)
        if len(self._resets) >= MAX_REMEMBERED_WINDOWS:
            self._resets.clear()
        self._resets[key] = reset_at
        return reset_at
