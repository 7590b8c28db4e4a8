"""Redis helpers shared by the services: hash tags, Lua scripts run by digest, lock tokens,
and a versioned cache entry that never lets an older state overwrite a newer one."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

if TYPE_CHECKING:
    from payments_api.config.redis import RedisClient

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


def hash_tag(owner_id: str) -> str:
    """`{owner_id}`, the part of a key a Redis Cluster hashes to pick its slot.

    Every key of the service names its owner — a user or merchant (`usr_…`, `mch_…`) — in its
    first braces: the keys one script or MULTI touches share an owner, so they share a slot
    and a cluster never answers CROSSSLOT. The tag comes before anything a client chose (an
    Idempotency-Key may hold braces too): Redis hashes the first `{…}` of a key."""
    return "{" + owner_id + "}"


class LuaScript:
    """A script sent once and then run by its SHA1 (EVALSHA), loaded again if the server
    forgot it. Lighter than redis-py's Script object, which checks for pipelines per call."""

    def __init__(self, redis: RedisClient, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            # The command itself: redis-py's evalsha() only adds two wrappers around it.
            return await self.redis.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.redis.eval(self.source, len(keys), *keys, *args)

    async def on_each(
        self, keys_each: Sequence[list[str]], args: list[Any], *, then_delete: Sequence[str] = ()
    ) -> list[Any]:
        """The script once for each key list of `keys_each` (with the same `args`), then a DEL
        of each of `then_delete`, in one round trip: a pipeline, not a transaction (MULTI), so
        that the runs need not share a hash slot (a cluster client sends each node its part).
        The script's answers; the first error raised (every command is sent whatever the
        others answered)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys in keys_each:
                # The command itself: a cluster pipeline refuses its evalsha() method (not
                # the command, whose keys it routes as any other's).
                pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
            for key in then_delete:
                pipe.delete(key)
            outcomes = await pipe.execute(raise_on_error=False)
        answers = outcomes[: len(keys_each)]
        for outcome in outcomes[len(keys_each) :]:
            if isinstance(outcome, Exception):
                raise outcome
        for index, (keys, answer) in enumerate(zip(keys_each, answers, strict=True)):
            if isinstance(answer, NoScriptError):
                answers[index] = await self.redis.eval(self.source, len(keys), *keys, *args)
            elif isinstance(answer, Exception):
                raise answer
        return answers


def new_lock_token() -> str:
    return secrets.token_hex(16)


def versioned_payload(raw: Any) -> str | None:
    """The payload of a "<version>|<payload>" entry."""
    if not isinstance(raw, str):
        return None
    _, sep, payload = raw.partition("|")
    return payload if sep else None
