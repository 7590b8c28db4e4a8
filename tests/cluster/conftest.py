"""The cluster tier: the tests of everything the service keeps in Redis (idempotency, the
payment, refund and capture races, cancels, rate limits, the cached read, stats, the event
stream, the scripts), run again on a real three-master Redis Cluster on loopback with
REDIS_CLUSTER=true.

Each module here star-imports the tests of one module of `tests/integration` or
`tests/services`; the fixtures below swap the Redis under them: `redis_url` is the cluster's
seed node, `make_settings` turns REDIS_CLUSTER on, `forget_redis` flushes every master and
`sync_redis` is a cluster client."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest
from redis import RedisCluster

from payments_api.config.settings import Settings
from tests.fixtures.servers import (
    RedisClusterServer,
    SyncRedisClient,
    abort_session,
    flush_redis_cluster,
    redis_cluster,
)


@pytest.fixture(scope="session")
def redis_cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServer]:
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster"), abort_session) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_cluster_server: RedisClusterServer) -> str:
    return redis_cluster_server.url


@pytest.fixture
def redis_nodes(redis_cluster_server: RedisClusterServer) -> tuple[str, ...]:
    return redis_cluster_server.urls


@pytest.fixture
def forget_redis(redis_cluster_server: RedisClusterServer) -> Callable[[], None]:
    return functools.partial(flush_redis_cluster, redis_cluster_server.urls)


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[SyncRedisClient]:
    client = RedisCluster.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def make_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    return functools.partial(make_settings, redis_cluster=True)
