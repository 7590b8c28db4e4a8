"""Redis helpers shared by the services: locks with owner tokens, and a versioned cache
entry that never lets an older state overwrite a newer one."""

from __future__ import annotations

import secrets
from typing import Any

from redis.asyncio import Redis

# Delete the lock only if we still own it (a lock that expired may now be someone else's).
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""

# Store "<version>|<payload>" unless the entry already holds a newer version.
_SET_IF_NEWER = """
local current = redis.call('get', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if sep and tonumber(string.sub(current, 1, sep - 1)) > tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('set', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
return 1
"""


class RedisScripts:
    """The Lua scripts, registered once per client (EVALSHA after the first call)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.release_lock = redis.register_script(_RELEASE_LOCK)
        self.set_if_newer = redis.register_script(_SET_IF_NEWER)


def new_lock_token() -> str:
    return secrets.token_hex(16)


async def acquire_lock(redis: Redis, key: str, token: str, ttl_ms: int) -> bool:
    return bool(await redis.set(key, token, nx=True, px=ttl_ms))


async def release_lock(scripts: RedisScripts, key: str, token: str) -> bool:
    return bool(await scripts.release_lock(keys=[key], args=[token]))


async def store_versioned(
    scripts: RedisScripts, key: str, version: int, payload: str, ttl_ms: int
) -> bool:
    return bool(await scripts.set_if_newer(keys=[key], args=[version, payload, ttl_ms]))


def split_versioned(raw: Any) -> str | None:
    """The payload of a "<version>|<payload>" entry."""
    if not isinstance(raw, str):
        return None
    _, sep, payload = raw.partition("|")
    return payload if sep else None
