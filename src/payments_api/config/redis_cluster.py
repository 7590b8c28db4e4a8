"""The Redis Cluster client (REDIS_CLUSTER=true): redis.asyncio.RedisCluster with the
standalone client's bounds (`config/redis.py`), and its own failures raised as RedisErrors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import ClusterError, RedisClusterException
from redis.exceptions import ConnectionError as RedisConnectionError

from payments_api.config.redis import MAX_CONNECTIONS, POOL_WAIT_SECONDS, command_deadline


class DeadlineRedisCluster(RedisCluster):
    """redis.asyncio.RedisCluster with DeadlineRedis's two bounds: COMMAND_TIMEOUT_SECONDS on
    every command (its redirections and a topology refresh included), and a bounded wait when
    every connection is out.

    A cluster client keeps its connections per node and fails a command at once with
    `MaxConnectionsError` when that node's are all in use. Here a command first takes one of
    MAX_CONNECTIONS permits: a burst larger than that waits (POOL_WAIT_SECONDS at most, then a
    ConnectionError, as the standalone pool), and no node is ever asked for more connections
    than it has, since a holder of a permit uses at most one connection of any node at a time.
    Pipelines take a permit too (`pipeline`); their call sites set their deadline.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._permits = asyncio.Semaphore(MAX_CONNECTIONS)

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        """One of MAX_CONNECTIONS permits to use a connection, waited for when all are out."""
        if self._permits.locked():
            try:
                async with asyncio.timeout(POOL_WAIT_SECONDS):
                    await self._permits.acquire()
            except TimeoutError:
                raise RedisConnectionError(
                    f"no Redis connection came free within {POOL_WAIT_SECONDS:g} s"
                ) from None
        else:
            await self._permits.acquire()
        try:
            yield
        finally:
            self._permits.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.permit(), redis_errors():
            with command_deadline():
                return await super().execute_command(*args, **kwargs)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused by redis-py, as there
        # redis-py declares an attribute abstract that ClusterPipeline sets when made.
        return PermittedPipeline(self, transaction)  # type: ignore[abstract]


class PermittedPipeline(ClusterPipeline):
    """A cluster pipeline that holds one of its client's permits while it runs."""

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        client = cast(DeadlineRedisCluster, self.cluster_client)
        async with client.permit(), redis_errors():
            return await super().execute(raise_on_error, allow_redirections)


@contextlib.asynccontextmanager
async def redis_errors() -> AsyncIterator[None]:
    """A cluster client's own failures as RedisErrors, as every caller handles Redis failing.

    redis-py raises `RedisClusterException`, which is no RedisError, when no seed node can be
    reached, when a slot has no node or when one command's keys span slots: each a Redis
    that cannot serve the call (a 503 where the caller needs Redis), not a bug to answer 500.
    """
    try:
        yield
    except RedisClusterException as exc:
        raise ClusterError(str(exc)) from exc
