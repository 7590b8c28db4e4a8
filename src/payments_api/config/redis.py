"""The one Redis client: redis.asyncio (hiredis parser) on `REDIS_URL`, fakeredis without it.

Its pool is a `BlockingConnectionPool`: a burst of more concurrent commands than the pool has
connections waits for one to come free (a healthy Redis frees each within a round trip)
instead of failing at once with `MaxConnectionsError`. That wait is bounded: a caller that gets
no connection within POOL_WAIT_SECONDS fails with a ConnectionError (a 503 where the caller
needs Redis), as when Redis cannot be reached.
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from payments_api.config.constants import SERVER_WAIT_SECONDS
from payments_api.config.database import describe_uri
from payments_api.config.settings import Settings
from payments_api.errors import StartupError
from payments_api.utils.logger import get_logger

logger = get_logger("redis")

COMMAND_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0
MAX_CONNECTIONS = 256
POOL_WAIT_SECONDS = 5.0
"""The longest a caller waits for a connection from the pool, connecting it included."""

_command_deadline: ContextVar[asyncio.Timeout | None] = ContextVar(
    "redis_command_deadline", default=None
)


class DeadlinePool(BlockingConnectionPool):
    """A blocking pool that starts the current command's deadline (see DeadlineRedis) once it
    hands over a connection, so that the wait for one counts against POOL_WAIT_SECONDS, not
    against the COMMAND_TIMEOUT_SECONDS that Redis has to answer in."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        connection: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]
        deadline = _command_deadline.get()
        if deadline is not None and not deadline.expired():
            deadline.reschedule(asyncio.get_running_loop().time() + COMMAND_TIMEOUT_SECONDS)
        return connection


class DeadlineRedis(Redis):
    """redis.asyncio.Redis with a deadline on every command, as `asyncio.timeout`.

    redis-py's own `socket_timeout` bounds each socket write with `asyncio.wait_for`, which
    creates a task per command: an eighth of a cached read's CPU in the profile. The same
    deadline around the whole command (write and read) costs nothing. It is POOL_WAIT_SECONDS
    until the pool hands over a connection, then COMMAND_TIMEOUT_SECONDS from there. Pipelines
    do not pass through here: their call sites set their own deadline (which covers their wait
    for a connection too).
    """

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        async with asyncio.timeout(POOL_WAIT_SECONDS) as deadline:
            token = _command_deadline.set(deadline)
            try:
                return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
            finally:
                _command_deadline.reset(token)


def create_redis(settings: Settings) -> Redis:
    if settings.redis_url is None:
        from fakeredis import FakeAsyncRedis

        client: Any = FakeAsyncRedis(decode_responses=True)
        return client  # type: ignore[no-any-return]
    pool = DeadlinePool.from_url(
        settings.redis_url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=None,  # the deadline is DeadlineRedis's (redis-py 8 defaults to 5 s)
        health_check_interval=30,
    )
    return DeadlineRedis.from_pool(pool)  # the client owns its pool: aclose() closes it


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
