"""The one Redis client: redis.asyncio (hiredis parser) on `REDIS_URL`, fakeredis without it.

Its pool is a `BlockingConnectionPool`: a burst of more concurrent commands than the pool has
connections waits for one to come free (a healthy Redis frees each within a round trip)
instead of failing at once with `MaxConnectionsError`. That wait is bounded: a caller that gets
no connection within POOL_WAIT_SECONDS fails with a ConnectionError (a 503 where the caller
needs Redis), as when Redis cannot be reached.

With REDIS_CLUSTER=true the one client is a `RedisCluster` seeded by REDIS_URL, with the same
deadline on every command and the same bounded wait for a connection (`config/redis_cluster.py`).
Every key one script or MULTI touches carries one hash tag (`utils/cache.py: hash_tag`), so a
cluster never answers CROSSSLOT.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeAlias, cast

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection
from redis.exceptions import RedisError

from payments_api.config.constants import SERVER_WAIT_SECONDS
from payments_api.config.database import describe_uri
from payments_api.config.settings import Settings
from payments_api.errors import StartupError
from payments_api.utils.cache import LuaScript, hash_tag
from payments_api.utils.deadlines import Deadline, SharedDeadlines
from payments_api.utils.logger import get_logger

logger = get_logger("redis")

COMMAND_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 2.0
MAX_CONNECTIONS = 256
POOL_WAIT_SECONDS = 5.0
"""The longest a caller waits for a connection from the pool, connecting it included."""

_COMMAND_DEADLINES = SharedDeadlines()

RedisClient: TypeAlias = Redis | RedisCluster
"""The one Redis client: standalone (the default) or a Redis Cluster (REDIS_CLUSTER=true)."""


def command_deadline() -> Deadline:
    """`with command_deadline():` — COMMAND_TIMEOUT_SECONDS for Redis to answer, the
    one deadline of every Redis command and pipeline (`utils/deadlines.py`: one timer per 50 ms
    of deadlines, not one per command)."""
    return _COMMAND_DEADLINES.within(COMMAND_TIMEOUT_SECONDS)


class DeadlinePool(BlockingConnectionPool):
    """A blocking pool that keeps the connections given back to it at hand.

    redis-py's pool takes a condition, a timer, a context manager and its own metrics hooks
    for every connection it hands out and every one given back: most of a command's cost in
    the profile of a cached read. This one keeps the connections given back on a stack of its
    own and hands them out again after the same check the pool makes (`ensure_connection`),
    so that the common case is a list pop and a push. They stay counted as in use by the pool
    beneath, so MAX_CONNECTIONS still bounds them all, and `disconnect` still reaches them.
    Whenever a caller waits inside the pool beneath (every connection is out), a connection
    given back goes to the pool beneath, which wakes that caller; so does one that must
    reconnect.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._at_hand: list[AbstractConnection] = []
        self._waiting = 0

    async def make_ready(self, connection: AbstractConnection) -> None:
        """`ensure_connection` for a connection taken at hand: an open connection with nothing
        unread is ready as it is (redis-py's check runs its reconnect machinery either way)."""
        if connection.is_connected and not await connection.can_read():
            return
        await self.ensure_connection(connection)

    def take_at_hand(self) -> AbstractConnection | None:
        """A connection given back earlier, not yet checked (`ensure_connection`), or None."""
        return self._at_hand.pop() if self._at_hand else None

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:
        connection = self.take_at_hand()
        if connection is not None:
            try:
                await self.make_ready(connection)
            except BaseException:
                await super().release(connection)
                raise
            return connection
        self._waiting += 1
        try:
            taken: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]
            return taken
        finally:
            self._waiting -= 1

    async def release(self, connection: AbstractConnection) -> None:
        if self._waiting or connection.should_reconnect():  # type: ignore[no-untyped-call]
            await super().release(connection)
        else:
            self._at_hand.append(connection)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        if inuse_connections:
            self._at_hand.clear()  # disconnected with the pool's in-use connections
        await super().disconnect(inuse_connections)


class DeadlineRedis(Redis):
    """redis.asyncio.Redis with a deadline on every command, as `asyncio.timeout`, on a lean
    path through the client.

    redis-py's own `socket_timeout` bounds each socket write with `asyncio.wait_for`, which
    creates a task per command: an eighth of a cached read's CPU in the profile. The same
    deadline around the whole command (write and read) is `command_deadline()`. It is
    COMMAND_TIMEOUT_SECONDS from the moment the command has a connection: one at hand at once
    (its check and any reconnect inside the deadline), else one the pool hands over within
    POOL_WAIT_SECONDS (a timer of its own, only then). Pipelines do not pass through here:
    their call sites set their own deadline (which covers their wait for a connection too).

    The command itself is what `Redis.execute_command` does for a pooled client — the
    connection's own retry policy around a write and a read — without the metrics hooks it
    awaits on every command (they report to nothing here).
    """

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        pool = cast(DeadlinePool, self.connection_pool)  # create_redis builds it so
        connection = pool.take_at_hand()
        at_hand = connection is not None
        if connection is None:  # the pool checks what it hands over
            async with asyncio.timeout(POOL_WAIT_SECONDS):
                connection = await pool.get_connection()
        try:
            with command_deadline():
                if at_hand:
                    await pool.make_ready(connection)
                return await connection.retry.call_with_retry(
                    lambda: self._round_trip(connection, args, options),
                    lambda _error: connection.disconnect(),
                )
        finally:
            await pool.release(connection)

    async def _round_trip(
        self, connection: AbstractConnection, args: tuple[Any, ...], options: dict[str, Any]
    ) -> Any:
        await connection.send_packed_command(_packed(connection, args))
        return await self.parse_response(cast(Connection, connection), args[0], **options)


def _packed(connection: AbstractConnection, args: tuple[Any, ...]) -> bytes | list[bytes]:
    """The command in RESP, by hiredis's packer in C (the same bytes as redis-py's, in a fifth
    of the time) unless the name holds a space: redis-py sends `CLIENT KILL` as two words."""
    name = args[0]
    if isinstance(name, str) and " " not in name:
        try:
            packed_in_c: bytes = hiredis.pack_command(args)
            return packed_in_c
        except TypeError:  # an argument hiredis does not pack (a memoryview, say)
            pass
    packed: list[bytes] = connection.pack_command(*args)
    return packed


def create_redis(settings: Settings) -> RedisClient:
    if settings.redis_url is None:
        from fakeredis import FakeAsyncRedis

        client: Any = FakeAsyncRedis(decode_responses=True)
        return client  # type: ignore[no-any-return]
    if settings.redis_cluster:
        from payments_api.config.redis_cluster import DeadlineRedisCluster  # needs this module

        return DeadlineRedisCluster.from_url(
            settings.redis_url,
            max_connections=MAX_CONNECTIONS,  # per node
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=None,  # the deadline is DeadlineRedisCluster's
            health_check_interval=30,
        )
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
    client: RedisClient, settings: Settings, wait_seconds: float = SERVER_WAIT_SECONDS
) -> None:
    """Ping until Redis answers; after `wait_seconds`, stop the start-up with a clear message.
    A standalone client on a node of a Redis Cluster is refused at once: it would be answered
    MOVED for most keys (REDIS_CLUSTER=true is what that Redis needs); so is a cluster client
    on a standalone Redis."""
    if settings.redis_url is None:
        logger.info("using the in-process Redis stand-in (fakeredis); data is not persisted")
        return
    uri = describe_uri(settings.redis_url)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            await client.ping()
            if not settings.redis_cluster and await _is_cluster_node(client):
                raise StartupError(
                    f"Redis at {uri} is a node of a Redis Cluster: set REDIS_CLUSTER=true"
                )
            logger.info("connected to Redis", uri=uri, cluster=settings.redis_cluster)
            return
        except (RedisError, OSError) as exc:
            if settings.redis_cluster and await _answers_standalone(settings.redis_url):
                raise StartupError(
                    f"REDIS_CLUSTER=true but Redis at {uri} is not a node of a Redis Cluster: "
                    "unset REDIS_CLUSTER"
                ) from exc
            if time.monotonic() >= deadline:
                raise StartupError(
                    f"Redis at {uri} could not be reached within {wait_seconds:g} s: "
                    f"{type(exc).__name__}"
                ) from exc
            await asyncio.sleep(0.5)


async def _is_cluster_node(client: RedisClient) -> bool:
    info: dict[str, Any] = await client.info("cluster")
    return bool(info.get("cluster_enabled"))


async def _answers_standalone(url: str) -> bool:
    """Whether the Redis at `url` answers as a server outside any cluster: the cluster client
    cannot tell one from a cluster that is down, so it is asked directly."""
    probe = Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=COMMAND_TIMEOUT_SECONDS
    )
    try:
        return not await _is_cluster_node(probe)
    except (RedisError, OSError):
        return False
    finally:
        await probe.aclose()


# Two keys of one hash tag, as every script of the service touches: read-only.
_READINESS_SCRIPT = "return redis.call('exists', KEYS[1], KEYS[2])"
_READINESS_KEYS = [f"ready:{hash_tag('probe')}:a", f"ready:{hash_tag('probe')}:b"]


async def check_redis(client: RedisClient) -> None:
    """/ready's Redis check: a script over two keys of one hash tag, run as the services run
    theirs (by digest, loaded when the server lacks it). It fails where PING alone would not:
    scripting refused, CROSSSLOT, a cluster that is down or does not cover the slot."""
    await LuaScript(client, _READINESS_SCRIPT)(keys=_READINESS_KEYS, args=[])
