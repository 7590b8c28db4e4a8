"""Idempotency keys in Redis: a lock per (scope, key) while the first request runs, then its
finished result, kept for at least 24 hours.

`begin` decides in one Redis round trip: replay a finished result, refuse while in flight,
or take the lock. The unique index on (userId, idempotencyKey) in MongoDB stays the last line
of defence for a key that Redis forgot.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from payments_api.errors import ConflictError, ServiceUnavailableError, UnprocessableError
from payments_api.utils.cache import LuaScript, new_lock_token
from payments_api.utils.logger import get_logger

logger = get_logger("idempotency")

RESULT_TTL_SECONDS = 48 * 3600
IN_FLIGHT_RETRY_AFTER_SECONDS = 1

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


def reused_key_error() -> UnprocessableError:
    return UnprocessableError(
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was already used with a different request body",
    )


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
    def __init__(self, redis: Redis, lock_ttl_ms: int) -> None:
        self.redis = redis
        self.lock_ttl_ms = lock_ttl_ms
        self._begin = LuaScript(redis, _BEGIN)
        self._finish = LuaScript(redis, _FINISH)
        self._abandon = LuaScript(redis, _ABANDON)

    async def begin(self, scope: str, key: str, body_fingerprint: str) -> Claim | StoredResult:
        """A finished result to replay, or the lock for this request. 409 while another
        request holds the key; 422 when a finished one had another body; 503 without Redis
        (before anything is written)."""
        result_key = f"idem:{scope}:{key}"
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
        return Claim(result_key, lock_key, token, body_fingerprint)

    async def forget(self, scope: str, key: str) -> None:
        """Drop the finished result of (scope, key) so that the key may be tried again: for a
        result that must not be replayed (what it made failed after all). Should a retry
        have stored a new result in between, it goes too; the database's unique index then
        answers the next replay."""
        try:
            await self.redis.delete(f"idem:{scope}:{key}")
        except (RedisError, OSError) as exc:
            logger.error("idempotency store unavailable", error=type(exc).__name__)
            raise unavailable() from exc

    async def finish(self, claim: Claim, result: StoredResult) -> None:
        """Remember the result and let go of the lock. A failure here loses nothing: the
        database's unique index answers the next replay."""
        try:
            await self._finish(
                keys=[claim.result_key, claim.lock_key],
                args=[claim.token, result.to_json(), RESULT_TTL_SECONDS],
            )
        except (RedisError, OSError) as exc:
            logger.warning("could not store idempotent result", error=type(exc).__name__)

    async def abandon(self, claim: Claim) -> None:
        """Let go of the lock after a request that changed nothing (so it may be retried)."""
        try:
            await self._abandon(keys=[claim.lock_key], args=[claim.token])
        except (RedisError, OSError) as exc:
            logger.warning("could not release idempotency lock", error=type(exc).__name__)
