"""Idempotency keys in Redis: a lock per (scope, key) while the first request runs, then its
finished result, kept for at least 24 hours.

`begin` decides in one Redis round trip: replay a finished result, refuse while in flight,
or take the lock. The unique index on (userId, idempotencyKey) in MongoDB stays the last line
of defence for a key that Redis forgot.

The lock is short (LOCK_TTL_SECONDS) and renewed in the background from `begin` until `finish`
or `abandon`, for at most `max_hold_seconds`: the key of a request whose process died is free
again within LOCK_TTL_SECONDS, while a live request keeps it however long its gateway call
takes (up to that bound).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from payments_api.errors import ConflictError, ServiceUnavailableError, UnprocessableError
from payments_api.utils.cache import LuaScript, new_lock_token
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
    """What a finished request left behind: enough to answer a replay."""

    fingerprint: str
    resource_id: str
    status_code: int
    body: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "fingerprint": self.fingerprint,
                "resourceId": self.resource_id,
                "statusCode": self.status_code,
                "body": self.body,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str) -> StoredResult:
        data = json.loads(raw)
        return cls(data["fingerprint"], data["resourceId"], data["statusCode"], data.get("body"))


@dataclass(slots=True)
class Claim:
    """The lock on one key for one request; `finish` or `abandon` it."""

    result_key: str
    lock_key: str
    token: str
    fingerprint: str
    renewal: LeaseKeeper | None = field(default=None, compare=False, repr=False)
    """Keeps the lock alive until `finish` or `abandon` (or the request's task ends)."""


def reused_key_error() -> UnprocessableError:
    return UnprocessableError(
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was already used with a different request body",
    )


def _result_key(scope: str, key: str) -> str:
    return f"idem:{scope}:{key}"


def in_flight_error() -> ConflictError:
    return ConflictError(
        "IDEMPOTENCY_KEY_IN_USE",
        "A request with this Idempotency-Key is still being processed",
        headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_SECONDS)},
    )


def unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "SERVICE_UNAVAILABLE", "The service is temporarily unavailable, please retry"
    )


class IdempotencyService:
    def __init__(
        self,
        redis: Redis,
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

    async def begin(self, scope: str, key: str, body_fingerprint: str) -> Claim | StoredResult:
        """A finished result to replay, or the lock for this request. 409 while another
        request holds the key; 422 when a finished one had another body; 503 without Redis
        (before anything is written)."""
        result_key = _result_key(scope, key)
        lock_key = f"idem:lock:{scope}:{key}"
        token = new_lock_token()
        try:
            answer = await self._begin(keys=[result_key, lock_key], args=[token, self.lock_ttl_ms])
        except (RedisError, OSError) as exc:
            logger.error("idempotency store unavailable", error=type(exc).__name__)
            raise unavailable() from exc
        kind = answer[0]
        if kind == "result":
            stored = StoredResult.from_json(answer[1])
            if stored.fingerprint != body_fingerprint:
                raise reused_key_error()
            return stored
        if kind == "locked":
            raise in_flight_error()
        claim = Claim(result_key, lock_key, token, body_fingerprint)
        claim.renewal = LeaseKeeper(
            functools.partial(self._renew_lock, lock_key, token),
            every=self.lock_ttl_ms / 3000,
            max_seconds=self.max_hold_seconds,
            what="idempotency lock",
            scope=scope,
        ).start()
        return claim

    async def _renew_lock(self, lock_key: str, token: str) -> bool:
        renewed = await self._renew(keys=[lock_key], args=[token, self.lock_ttl_ms])
        return bool(renewed == 1)

    @staticmethod
    async def _stop_renewing(claim: Claim) -> None:
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
            raise unavailable() from exc

    async def finish(self, claim: Claim, result: StoredResult) -> None:
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

    async def abandon(self, claim: Claim) -> None:
        """Let go of the lock after a request that changed nothing (so it may be retried)."""
        await self._stop_renewing(claim)
        try:
            await self._abandon(keys=[claim.lock_key], args=[claim.token])
        except (RedisError, OSError) as exc:
            logger.warning("could not release idempotency lock", error=type(exc).__name__)
