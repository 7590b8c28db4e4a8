"""Counting requests against RATE_LIMIT in Redis, shared by every server process.

`limits` parses RATE_LIMIT, names the windows (`item.key_for`) and knows their length. The
count is one script, a fixed window as `limits` counts one (INCRBY, an expiry when the window
starts), which also answers when the window resets and fetches the key the request's route
reads first: one Redis round trip for the hot read, whichever process started the window.
(`limits`' own asyncio storage would ask for the reset in a second round trip, and on a Redis
Cluster it would open a second client of its own.)

A caller's counter carries the caller's hash tag (`ratelimit:…{usr_…}…`), as does the cache
entry it prefetches (`services/payment_cache.py`), so on a Redis Cluster both are in one slot.
"""

from __future__ import annotations

import time
from typing import Any

from limits import RateLimitItem

from payments_api.config.redis import RedisClient
from payments_api.utils.cache import LuaScript

KEY_PREFIX = "ratelimit"
MAX_REMEMBERED_WINDOWS = 10_000

# KEYS: counter[, prefetch]. ARGV: window milliseconds, cost.
# Returns {count, milliseconds until the window resets[, the prefetched value]}.
_HIT_AND_PREFETCH = """
local count = redis.call('incrby', KEYS[1], ARGV[2])
local reset_in = tonumber(ARGV[1])
if tonumber(count) == tonumber(ARGV[2]) then
  redis.call('pexpire', KEYS[1], ARGV[1])
else
  reset_in = redis.call('pttl', KEYS[1])
  if reset_in < 0 then
    redis.call('pexpire', KEYS[1], ARGV[1])
    reset_in = tonumber(ARGV[1])
  end
end
if KEYS[2] then
  return {count, reset_in, redis.call('get', KEYS[2])}
end
return {count, reset_in}
"""


class RateLimiter:
    """Counting for one RATE_LIMIT item on the app's Redis client."""

    def __init__(self, redis: RedisClient, item: RateLimitItem) -> None:
        self.item = item
        self.window_ms = item.get_expiry() * 1000
        self._hit = LuaScript(redis, _HIT_AND_PREFETCH)
        self._counters: dict[str, str] = {}

    def counter_key(self, identity: str) -> str:
        """The caller's counter, as `limits` names its window, built once per caller
        (`key_for` joins and escapes five parts)."""
        key = self._counters.get(identity)
        if key is None:
            if len(self._counters) >= MAX_REMEMBERED_WINDOWS:
                self._counters.clear()
            key = self._counters[identity] = f"{KEY_PREFIX}:{self.item.key_for(identity)}"
        return key

    async def hit(self, identity: str, prefetch_key: str | None) -> tuple[int, float, Any]:
        """Count one request of `identity` (which carries the caller's hash tag), fetching
        `prefetch_key` (a key of the same tag) in the same round trip: (the count in this
        window, when the window resets as Unix time, the prefetched value or None)."""
        keys = [self.counter_key(identity)]
        if prefetch_key:
            keys.append(prefetch_key)
        reply = await self._hit(keys=keys, args=[self.window_ms, 1])
        prefetched = reply[2] if len(reply) > 2 else None
        return int(reply[0]), time.time() + int(reply[1]) / 1000, prefetched
