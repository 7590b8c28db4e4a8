"""Whether each dependency answers: the checks GET /ready reports and /metrics turns into the
`dependency_ready` gauge, so the alert and the load balancer judge by the same test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from payments_api.config.constants import READINESS_TIMEOUT_SECONDS, CheckResult
from payments_api.config.database import Database
from payments_api.config.redis import RedisClient, check_redis
from payments_api.utils.logger import get_logger

logger = get_logger("readiness")


async def _check(name: str, probe: Awaitable[Any]) -> CheckResult:
    try:
        await asyncio.wait_for(probe, timeout=READINESS_TIMEOUT_SECONDS)
    except TimeoutError:
        logger.warning("readiness check timed out", dependency=name)
        return "timeout"
    except Exception as exc:
        logger.warning("readiness check failed", dependency=name, error=type(exc).__name__)
        return "error"
    return "ok"


async def check_dependencies(database: Database, redis: RedisClient) -> dict[str, CheckResult]:
    """Each dependency's check, run side by side, each bounded by READINESS_TIMEOUT_SECONDS."""
    mongodb, redis_result = await asyncio.gather(
        _check("mongodb", database.ping()), _check("redis", check_redis(redis))
    )
    return {"mongodb": mongodb, "redis": redis_result}
