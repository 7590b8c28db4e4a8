"""Idempotency keys in Redis: a lock per (scope, key) while the first request runs, then its
finished result, kept for at least 24 hours.

A request uses its key through `claim` (an async context manager, see `Claim`); its `begin`
decides in one Redis round trip: replay a finished result, refuse while in flight, or take
the lock. The unique index on (userId, idempotencyKey) in MongoDB stays the last line
of defence for a key that Redis forgot.

The lock is short (LOCK_TTL_SECONDS) and renewed in the background from `begin` until `finish`
or `abandon`, for at most `max_hold_seconds`: the key of a request whose process died is free
again within LOCK_TTL_SECONDS, while a live request keeps it however long its gateway call
takes (up to that bound).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from payments_api.config.redis import RedisClient
from payments_api.errors import ConflictError, ServiceUnavailableError, UnprocessableError
from payments_api.utils.cache import LuaScript, hash_tag, new_lock_token
from payments_api.utils.leases import LeaseKeeper
from payments_api.utils.logger import get_logger

logger = get_logger("idempotency")

RESULT_TTL_SECONDS = 48 * 3600
IN_FLIGHT_RETRY_AFTER_SECONDS = 1
LOCK_TTL_SECONDS = 10.0
"""An in-flight lock's TTL, renewed every third of it while its request runs (the contract:
what a dead process held is taken over within 20 s)."""

# KEYS: result, lock. ARGV: lock token, lock ttl ms.
# Returns {"result", <json>} | {"locked"} | {"acquired"}.
_BEGIN = """
local result = redis.call('get', KEYS[1])
if result then
  return {'result', result}
end
if redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'acquired'}
end
return {'locked'}
"""

# KEYS: result, lock. ARGV: token, result json, ttl s. Store the result and drop our lock.
_FINISH = """
redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3])
if redis.call('get', KEYS[2]) == ARGV[1] then
  redis.call('del', KEYS[2])
end
return 1
"""

# KEYS: lock. ARGV: token, ttl ms. Extend our lock; 0 when it is no longer ours (or gone).
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lock. ARGV: token. Drop our lock without a result (the request changed nothing).
_ABANDON = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def fingerprint(body: dict[str, Any]) -> str:
    """A stable digest of the request body: same body, same digest, whatever the key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResult:
    """What a finished request left behind: its body's fingerprint and what it made (a
    payment or refund id), from which a replay is answered."""

    fingerprint: str
    resource_id: str

    def to_json(self) -> str:
        return json.dumps(
            {"fingerprint": self.fingerprint, "resourceId": self.resource_id},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str) -> StoredResult:
        data = json.loads(raw)
        return cls(data["fingerprint"], data["resourceId"])


@dataclass(slots=True)
class KeyLock:
    """The lock on one key for one request; `finish` or `abandon` it."""

    result_key: str
    lock_key: str
    token: str
    fingerprint: str
    renewal: LeaseKeeper | None = field(default=None, compare=False, repr=False)
    """Keeps the lock alive until `finish` or `abandon` (or the request's task ends)."""


@dataclass(slots=True)
class Claim:
    """A request's use of its key inside `async with idempotency.claim(...)`: either the
    finished request to replay (`replay`, nothing held), or the lock, held until the block
    ends. What the request made (`made(...)`) is remembered for its replays when the block
    ends without an error; otherwise the key is let go, so that a retry runs afresh."""

    fingerprint: str
    replay: StoredResult | None = None
    lock: KeyLock | None = None
    resource_id: str | None = None

    def made(self, resource_id: str) -> None:
        self.resource_id = resource_id


ReplayCheck = Callable[[StoredResult], Awaitable[bool]]
"""Whether a finished request's result may still be replayed (False: what it made did not
happen after all, so the key is tried again)."""


class IdempotencyKeyReused(UnprocessableError):
    code = "IDEMPOTENCY_KEY_REUSED"
    message = "This Idempotency-Key was already used with a different request body"


class IdempotencyKeyInUse(ConflictError):
    code = "IDEMPOTENCY_KEY_IN_USE"
    message = "A request with this Idempotency-Key is still being processed"
    retry_after_seconds = IN_FLIGHT_RETRY_AFTER_SECONDS


class IdempotencyStoreUnavailable(ServiceUnavailableError):
    code = "SERVICE_UNAVAILABLE"
    message = "The service is temporarily unavailable, please retry"


def key_scope(purpose: str, owner_id: str) -> str:
    """An Idempotency-Key's scope: its purpose (`pay`, `refund`, `capture`) and its owner, whose
    id is the hash tag of its result and lock keys (touched together: on a cluster, one slot)."""
    return f"{purpose}:{hash_tag(owner_id)}"


def _result_key(scope: str, key: str) -> str:
    return f"idem:{scope}:{key}"


def _lock_key(scope: str, key: str) -> str:
    return f"idem:lock:{scope}:{key}"


class IdempotencyService:
    def __init__(
        self,
        redis: RedisClient,
        *,
        max_hold_seconds: float,
        lock_ttl_seconds: float = LOCK_TTL_SECONDS,
    ) -> None:
        """`max_hold_seconds`: the longest a request keeps its lock renewed (its gateway call
        and a margin); after that the lock lapses LOCK_TTL_SECONDS later even if the request
        never finished."""
        self.redis = redis
        self.lock_ttl_ms = int(lock_ttl_seconds * 1000)
        self.max_hold_seconds = max_hold_seconds
        self._begin = LuaScript(redis, _BEGIN)
        self._finish = LuaScript(redis, _FINISH)
        self._abandon = LuaScript(redis, _ABANDON)
        self._renew = LuaScript(redis, _RENEW)

    async def begin(self, scope: str, key: str, body_fingerprint: str) -> KeyLock | StoredResult:
        """A finished result to replay, or the lock for this request (`claim` is how a
        request uses these): `IdempotencyKeyInUse` while another request holds the key,
        `IdempotencyKeyReused` when a finished one had another body,
        `IdempotencyStoreUnavailable` without Redis (before anything is written)."""
        result_key = _result_key(scope, key)
        lock_key = _lock_key(scope, key)
        token = new_lock_token()
        try:
            answer = await self._begin(keys=[result_key, lock_key], args=[token, self.lock_ttl_ms])
        except (RedisError, OSError) as exc:
            logger.error("idempotency store unavailable", error=type(exc).__name__)
            raise IdempotencyStoreUnavailable() from exc
        kind = answer[0]
        if kind == "result":
            stored = StoredResult.from_json(answer[1])
            if stored.fingerprint != body_fingerprint:
                raise IdempotencyKeyReused()
            return stored
        if kind == "locked":
            raise IdempotencyKeyInUse()
        claim = KeyLock(result_key, lock_key, token, body_fingerprint)
        claim.renewal = LeaseKeeper(
            functools.partial(self._renew_lock, lock_key, token),
            every=self.lock_ttl_ms / 3000,
            max_seconds=self.max_hold_seconds,
            what="idempotency lock",
            scope=scope,
        ).start()
        return claim

    @contextlib.asynccontextmanager
    async def claim(
        self,
        scope: str,
        key: str,
        body_fingerprint: str,
        *,
        still_replayable: ReplayCheck | None = None,
    ) -> AsyncIterator[Claim]:
        """The one way a request uses its Idempotency-Key: a finished request's result to
        replay, or the key's lock until the block ends (see `Claim`); refused as `begin`
        refuses.

        `still_replayable` vetoes a replay whose result did not happen after all: that result
        is forgotten and the key taken afresh, once (a second such result is another retry's,
        still settling: in flight)."""
        claim = await self._claim(scope, key, body_fingerprint, still_replayable)
        lock = claim.lock
        if lock is None:
            yield claim
            return
        try:
            yield claim
        except BaseException:
            await self.abandon(lock)
            raise
        if claim.resource_id is None:
            await self.abandon(lock)
        else:
            await self.finish(lock, StoredResult(lock.fingerprint, claim.resource_id))

    async def _claim(
        self, scope: str, key: str, body_fingerprint: str, still_replayable: ReplayCheck | None
    ) -> Claim:
        for _ in range(2):
            taken = await self.begin(scope, key, body_fingerprint)
            if isinstance(taken, KeyLock):
                return Claim(body_fingerprint, lock=taken)
            if still_replayable is None or await still_replayable(taken):
                return Claim(body_fingerprint, replay=taken)
            await self.forget(scope, key)
        raise IdempotencyKeyInUse()

    async def _renew_lock(self, lock_key: str, token: str) -> bool:
        renewed = await self._renew(keys=[lock_key], args=[token, self.lock_ttl_ms])
        return bool(renewed == 1)

    @staticmethod
    async def _stop_renewing(claim: KeyLock) -> None:
        if claim.renewal is not None:
            await claim.renewal.stop()

    async def forget(self, scope: str, key: str) -> None:
        """Drop the finished result of (scope, key) so that the key may be tried again: for a
        result that must not be replayed (what it made failed after all). Should a retry
        have stored a new result in between, it goes too; the database's unique index then
        answers the next replay."""
        try:
            await self.redis.delete(_result_key(scope, key))
        except (RedisError, OSError) as exc:
            logger.error("idempotency store unavailable", error=type(exc).__name__)
            raise IdempotencyStoreUnavailable() from exc

    async def finish(self, claim: KeyLock, result: StoredResult) -> None:
        """Remember the result and let go of the lock. A failure here loses nothing: the
        database's unique index answers the next replay."""
        await self._stop_renewing(claim)
        try:
            await self._finish(
                keys=[claim.result_key, claim.lock_key],
                args=[claim.token, result.to_json(), RESULT_TTL_SECONDS],
            )
        except (RedisError, OSError) as exc:
            logger.warning("could not store idempotent result", error=type(exc).__name__)

    async def abandon(self, claim: KeyLock) -> None:
        """Let go of the lock after a request that changed nothing (so it may be retried)."""
        await self._stop_renewing(claim)
        try:
            await self._abandon(keys=[claim.lock_key], args=[claim.token])
        except (RedisError, OSError) as exc:
            logger.warning("could not release idempotency lock", error=type(exc).__name__)
