"""Redis helpers shared by the services: Lua scripts run by digest, lock tokens, and a
versioned cache entry that never lets an older state overwrite a newer one."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

# Store "<version>|<payload>" unless the entry already holds a newer version.
SET_IF_NEWER = """
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


class LuaScript:
    """A script sent once and then run by its SHA1 (EVALSHA), loaded again if the server
    forgot it. Lighter than redis-py's Script object, which checks for pipelines per call."""

    def __init__(self, redis: Redis, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            # The command itself: redis-py's evalsha() only adds two wrappers around it.
            return await self.redis.execute_command(  # type: ignore[no-untyped-call]
                "EVALSHA", self.sha, len(keys), *keys, *args
            )
        except NoScriptError:
            return await self.redis.eval(self.source, len(keys), *keys, *args)

    async def then_delete(self, keys: list[str], args: list[Any], deleted: Sequence[str]) -> Any:
        """The script, then a DEL of each of `deleted`, in one round trip: a pipeline, not a
        transaction (MULTI), so that the keys need not share a hash slot. The script's answer;
        the first error raised (a DEL is sent whatever the script answered)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(self.sha, len(keys), *keys, *args)
            for key in deleted:
                pipe.delete(key)
            answer, *deletions = await pipe.execute(raise_on_error=False)
        for outcome in deletions:
            if isinstance(outcome, Exception):
                raise outcome
        if isinstance(answer, NoScriptError):
            return await self.redis.eval(self.source, len(keys), *keys, *args)
        if isinstance(answer, Exception):
            raise answer
        return answer


def new_lock_token() -> str:
    return secrets.token_hex(16)


def versioned_payload(raw: Any) -> str | None:
    """The payload of a "<version>|<payload>" entry."""
    if not isinstance(raw, str):
        return None
    _, sep, payload = raw.partition("|")
    return payload if sep else None
