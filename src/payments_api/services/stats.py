"""A user's payment statistics: totals kept on the user document (changed in the completing
transaction) and served from a Redis hash that is dropped on every change and refilled on read;
today's spending comes from the daily-limit document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis.exceptions import RedisError

from payments_api.config.database import Database
from payments_api.config.redis import RedisClient, command_deadline
from payments_api.models import user as user_store
from payments_api.services.daily_limits import DailyLimitService
from payments_api.utils.cache import hash_tag
from payments_api.utils.clock import iso_utc, utcnow
from payments_api.utils.logger import get_logger

logger = get_logger("stats")

STATS_TTL_SECONDS = 3600


def stats_key(user_id: str) -> str:
    """In the user's hash slot, as the payment cache entry a change drops it with."""
    return f"stats:{hash_tag(user_id)}"


class StatsService:
    def __init__(self, redis: RedisClient, db: Database, limits: DailyLimitService) -> None:
        self.redis = redis
        self.db = db
        self.limits = limits

    async def invalidate(self, user_id: str) -> None:
        try:
            await self.redis.delete(stats_key(user_id))
        except (RedisError, OSError) as exc:
            logger.warning("could not drop cached stats", error=type(exc).__name__)

    async def _totals(self, user_id: str) -> dict[str, str]:
        key = stats_key(user_id)
        try:
            raw = await self.redis.hgetall(key)
        except (RedisError, OSError):
            raw = {}
        cached = {str(field): str(value) for field, value in raw.items()}
        if cached:
            return cached
        user = await user_store.find_by_id(self.db, user_id)
        if user is None:
            return {}
        totals = {
            "totalTransactions": str(user.stats.total_transactions),
            "totalAmount": str(user.stats.total_amount),
            "lastTransactionAt": iso_utc(user.stats.last_transaction_at)
            if user.stats.last_transaction_at
            else "",
            "dailyLimit": str(user.daily_limit),
        }
        try:
            with command_deadline():
                async with self.redis.pipeline() as pipe:
                    pipe.hset(key, mapping=dict[Any, Any](totals))
                    pipe.expire(key, STATS_TTL_SECONDS)
                    await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("could not cache stats", error=type(exc).__name__)
        return totals

    async def for_user(self, user_id: str) -> dict[str, Any]:
        totals = await self._totals(user_id)
        today_spent = await self.limits.spent(user_id, self.limits.day_of(utcnow()))
        daily_limit = int(totals.get("dailyLimit", "0"))
        last = totals.get("lastTransactionAt") or None
        return {
            "total_transactions": int(totals.get("totalTransactions", "0")),
            "total_amount": int(totals.get("totalAmount", "0")),
            "last_transaction_at": datetime.fromisoformat(last) if last else None,
            "today_spent": today_spent,
            "daily_limit": daily_limit,
            "remaining_today": max(0, daily_limit - today_spent),
        }
