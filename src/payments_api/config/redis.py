"""The one Redis client: redis.asyncio (hiredis parser) on `REDIS_URL`, fakeredis without it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from payments_api.config.constants import SERVER_WAIT_SECONDS
from payments_api.config.database import describe_uri
from payments_api.config.settings import Settings
from payments_api.errors import StartupError
from payments_api.utils.logger import get_logger

logger = get_logger("redis")

COMMAND_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0


class DeadlineRedis(Redis):
    """redis.asyncio.Redis with a deadline on every command, as `asyncio.timeout`.

    redis-py's own `socket_timeout` bounds each socket write with `asyncio.wait_for`, which
    creates a task per command: an eighth of a cached read's CPU in the profile. The same
    deadline around the whole command (write and read) costs nothing. Pipelines do not pass
    through here: their call sites set their own deadline.
    """

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def create_redis(settings: Settings) -> Redis:
    if settings.redis_url is None:
        from fakeredis import FakeAsyncRedis

        client: Any = FakeAsyncRedis(decode_responses=True)
        return client  # type: ignore[no-any-return]
    return DeadlineRedis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=None,  # the deadline is DeadlineRedis's (redis-py 8 defaults to 5 s)
        health_check_interval=30,
        max_connections=256,
    )


async def wait_for_redis(
    client: Redis, settings: Settings, wait_seconds: float = SERVER_WAIT_SECONDS
) -> None:
    """Ping until Redis answers; after `wait_seconds`, stop the start-up with a clear message."""
    if settings.redis_url is None:
        logger.info("using the in-process Redis stand-in (fakeredis); data is not persisted")
        return
    uri = describe_uri(settings.redis_url)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            await client.ping()
            logger.info("connected to Redis", uri=uri)
            return
        except (RedisError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise StartupError(
                    f"Redis at {uri} could not be reached within {wait_seconds:g} s: "
                    f"{type(exc).__name__}"
                ) from exc
            await asyncio.sleep(0.5)
