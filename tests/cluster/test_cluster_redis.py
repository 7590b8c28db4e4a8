"""What only a Redis Cluster shows: /ready on it, a standalone client refused on one of its
nodes, and the keys the service writes, each carrying the hash tag its scripts rely on."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from redis import Redis, RedisCluster

from payments_api.config.redis import create_redis, wait_for_redis
from payments_api.config.settings import Settings
from payments_api.errors import StartupError
from payments_api.services.events import STREAM
from tests.fixtures.apps import running
from tests.fixtures.payments import open_shop_and_pay, read, refund, stats_of
from tests.fixtures.servers import SyncRedisClient, redis_cluster, redis_server, scripts_refused

HASH_TAG = re.compile(r"\{[^{}]+\}")
"""A key's hash tag as Redis Cluster reads it: its first `{…}` with something inside."""
READINESS_PROBE_KEY = "ready:{probe}:a"
"""A key of the slot /ready's script probes (config/redis.py)."""
ANONYMOUS_COUNTER = re.compile(r"ratelimit:.*/ip:")
"""The rate-limit counter of a caller without a credential: the only key its script touches."""


async def test_ready_on_a_cluster(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"mongodb": "ok", "redis": "ok"}}


async def test_not_ready_when_the_cluster_runs_no_script(
    make_settings: Callable[..., Settings], redis_nodes: tuple[str, ...]
) -> None:
    with scripts_refused(*redis_nodes) as url:
        async with running(make_settings(redis_url=url)) as (_, client):
            response = await client.get("/ready")

    assert response.status_code == 503, response.text
    assert response.json()["checks"] == {"mongodb": "ok", "redis": "error"}


async def test_a_standalone_client_on_a_cluster_node_is_refused_at_start_up(
    make_settings: Callable[..., Settings],
) -> None:
    await refused_at_start_up(make_settings(redis_cluster=False), "set REDIS_CLUSTER=true")


async def test_a_cluster_client_on_a_standalone_redis_is_refused_at_start_up(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with redis_server(tmp_path, pytest.fail) as standalone:
        settings = make_settings(redis_url=standalone.url)
        await refused_at_start_up(settings, "not a node of a Redis Cluster")


async def refused_at_start_up(settings: Settings, reason: str) -> None:
    """The start-up's wait for Redis stops with `reason` (not, after its 30 s, with "could not
    be reached")."""
    client = create_redis(settings)
    try:
        with pytest.raises(StartupError, match=reason):
            await wait_for_redis(client, settings, wait_seconds=30)
    finally:
        await client.aclose()


async def test_every_key_the_service_writes_carries_a_hash_tag(
    client: httpx.AsyncClient, sync_redis: SyncRedisClient, redis_nodes: tuple[str, ...]
) -> None:
    """A payment paid, read by its user and its merchant, refunded and counted in the user's
    stats: every key left in Redis has a hash tag naming an owner, so
    that each script's keys share a slot (a key without one would answer CROSSSLOT beside
    another key of its owner). Only keys no script touches with another go without: the
    event stream and an anonymous caller's rate-limit counter. And none of it asked Redis
    for KEYS or a SCAN of the keyspace, which a cluster answers per node."""
    for url in redis_nodes:
        with Redis.from_url(url) as node:
            node.config_resetstat()
    shop, payment = await open_shop_and_pay(client)
    payment_id = payment["paymentId"]
    await read(client, shop.user.headers, payment_id)
    await read(client, shop.merchant.headers, payment_id)
    refunded = await refund(client, shop.merchant.headers, payment_id, 1_000)
    assert refunded.status_code in (200, 201), refunded.text
    await stats_of(client, shop.user)
    assert whole_keyspace_commands(redis_nodes) == {}

    keys = set(sync_redis.scan_iter(count=1000))

    tags = {key: HASH_TAG.search(key) for key in keys - {STREAM}}
    untagged = [key for key, tag in tags.items() if tag is None]
    assert all(ANONYMOUS_COUNTER.match(key) for key in untagged), untagged
    owners = {tag.group() for tag in tags.values() if tag is not None}
    assert {f"{{{shop.user.user_id}}}", f"{{{shop.merchant.merchant_id}}}"} <= owners, owners


def whole_keyspace_commands(node_urls: tuple[str, ...]) -> dict[str, int]:
    """How many KEYS and SCAN commands the nodes ran since their stats were reset."""
    found: dict[str, int] = {}
    for url in node_urls:
        with Redis.from_url(url, decode_responses=True) as node:
            for name, stats in node.info("commandstats").items():
                if name in ("cmdstat_keys", "cmdstat_scan"):
                    found[f"{url} {name}"] = int(stats["calls"])
    return found


async def test_not_ready_once_the_cluster_has_lost_a_master(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A master that is not the readiness probe's is killed (SIGKILL): once the other nodes
    have marked it failed (the node timeout, 5 s here), the cluster refuses every slot, as
    Redis does by default (cluster-require-full-coverage), and /ready says so."""
    with redis_cluster(tmp_path, pytest.fail) as cluster:
        async with running(make_settings(redis_url=cluster.url)) as (_, client):
            assert (await client.get("/ready")).status_code == 200
            with RedisCluster.from_url(cluster.url) as probe_owner:
                owner = probe_owner.get_node_from_key(READINESS_PROBE_KEY)
            [victim] = [
                process
                for url, process in zip(cluster.urls, cluster.processes, strict=True)
                if not url.endswith(f":{owner.port}/0")
            ][:1]
            victim.kill()

            statuses = []
            for _ in range(120):  # 30 s
                response = await client.get("/ready")
                statuses.append(response.status_code)
                if response.status_code == 503:
                    break
                await asyncio.sleep(0.25)

    assert statuses[-1] == 503, statuses
    checks = response.json()["checks"]
    assert checks["mongodb"] == "ok"
    assert checks["redis"] in ("error", "timeout")  # CLUSTERDOWN, or retried to the deadline
