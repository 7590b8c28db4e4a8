"""/health, /ready and /metrics as an operator and a deployment see them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from motor.motor_asyncio import AsyncIOMotorClient
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from payments_api import __version__
from payments_api.config.constants import GAUGE_REFRESH_TIMEOUT_SECONDS
from payments_api.config.settings import Settings
from payments_api.models import event as events_model
from payments_api.models import payment_claims
from payments_api.services.events import EventDispatcher
from payments_api.utils.clock import utcnow
from payments_api.utils.metrics import Metrics
from tests.fixtures.apps import running
from tests.fixtures.factories import create_merchant, register_user
from tests.fixtures.payments import collection, open_shop, open_shop_and_pay
from tests.fixtures.reconciliation import abandoned_payment
from tests.fixtures.servers import Receiver, free_port, scripts_refused

MERCHANT_ROUTE = "/api/v1/merchants/{merchantId}"


@pytest.fixture
async def redis_unreachable(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[None]:
    """After start-up, the app's Redis client points at a port where nothing answers."""
    services = app.state.services
    original = services.redis
    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    services.redis = dead
    try:
        yield
    finally:
        services.redis = original
        await dead.aclose()


@pytest.fixture
async def mongodb_unreachable(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[None]:
    """After start-up, the app's MongoDB client points at a port where nothing answers (and
    gives up choosing a server after 0.5 s, inside the readiness check's own timeout)."""
    database = app.state.services.database
    original_client, original_db = database.client, database.db
    dead: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(
        f"mongodb://127.0.0.1:{free_port()}/",
        serverSelectionTimeoutMS=500,
        connectTimeoutMS=500,
    )
    database.client, database.db = dead, dead[original_db.name]
    try:
        yield
    finally:
        database.client, database.db = original_client, original_db
        dead.close()


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def count_of(text: str, **labels: str) -> float:
    return sum(
        value
        for sample_labels, value in samples(text, "http_requests_total")
        if all(sample_labels.get(key) == wanted for key, wanted in labels.items())
    )


async def test_health_reports_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "timestamp", "uptime", "memory", "version"}
    assert body["status"] == "healthy"
    assert body["version"] == __version__
    assert isinstance(body["uptime"], int | float)
    assert body["uptime"] >= 0
    assert isinstance(body["memory"], dict)
    assert body["memory"]


async def test_health_timestamp_is_utc_iso_8601_with_z(client: httpx.AsyncClient) -> None:
    timestamp = (await client.get("/health")).json()["timestamp"]
    assert timestamp.endswith("Z")
    parsed = datetime.fromisoformat(timestamp.removesuffix("Z") + "+00:00")
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.usefixtures("mongodb_unreachable", "redis_unreachable")
async def test_health_touches_no_dependency(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    # Both really are cut off: the readiness check, which does touch them, says so.
    readiness = await client.get("/ready")
    assert readiness.status_code == 503
    checks = readiness.json()["checks"]
    assert checks["mongodb"] != "ok"
    assert checks["redis"] != "ok"


async def test_ready_when_dependencies_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"mongodb": "ok", "redis": "ok"}}


@pytest.mark.usefixtures("redis_unreachable")
async def test_not_ready_names_redis_when_it_is_unreachable(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["mongodb"] == "ok"
    assert body["checks"]["redis"] != "ok"


@pytest.mark.usefixtures("mongodb_unreachable")
async def test_not_ready_names_mongodb_when_it_is_unreachable(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["mongodb"] in ("error", "timeout")


async def test_not_ready_when_redis_answers_ping_but_runs_no_script(
    make_settings: Callable[..., Settings], redis_url: str
) -> None:
    """Every Redis step of the service is a script: a Redis that answers PING but refuses
    scripts (here an ACL; on a misconfigured cluster, CROSSSLOT or MOVED) is not ready."""
    with scripts_refused(redis_url) as url:
        async with running(make_settings(redis_url=url)) as (_, client):
            response = await client.get("/ready")
        with SyncRedis.from_url(url) as same_user:
            assert same_user.ping() is True
    assert response.status_code == 503, response.text
    assert response.json() == {
        "status": "not_ready",
        "checks": {"mongodb": "ok", "redis": "error"},
    }


async def test_ready_again_once_redis_is_back(app: FastAPI, client: httpx.AsyncClient) -> None:
    services = app.state.services
    original = services.redis
    dead = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    services.redis = dead
    try:
        assert (await client.get("/ready")).status_code == 503
    finally:
        services.redis = original
        await dead.aclose()
    assert (await client.get("/ready")).status_code == 200


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"http_requests", "http_request_duration_seconds"} <= names


async def test_metrics_count_requests_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    merchant = await create_merchant(client)
    for _ in range(2):
        found = await client.get(f"/api/v1/merchants/{merchant.merchant_id}", headers=user.headers)
        assert found.status_code == 200
    missing = await client.get("/api/v1/merchants/mch_DOESNOTEXIST0000", headers=user.headers)
    assert missing.status_code == 404

    text = (await client.get("/metrics")).text
    assert count_of(text, method="GET", route=MERCHANT_ROUTE, status="200") == 2
    assert count_of(text, method="GET", route=MERCHANT_ROUTE, status="404") == 1
    assert merchant.merchant_id not in text
    assert "mch_DOESNOTEXIST0000" not in text


async def test_metrics_never_label_by_a_raw_unknown_path(client: httpx.AsyncClient) -> None:
    for n in range(3):
        assert (await client.get(f"/scanner/probe-{n}-x7q")).status_code == 404
    text = (await client.get("/metrics")).text
    assert "probe-" not in text
    assert count_of(text, status="404") == 3


async def test_metrics_have_latency_buckets_by_route(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.get("/health")
    text = (await client.get("/metrics")).text
    buckets = [
        (labels, value)
        for labels, value in samples(text, "http_request_duration_seconds_bucket")
        if labels.get("route") == "/health" and labels.get("status") == "200"
    ]
    bounds = {labels["le"] for labels, _ in buckets}
    assert "+Inf" in bounds
    assert len(bounds) > 1
    assert dict((labels["le"], value) for labels, value in buckets)["+Inf"] == 3
    counts = [
        value
        for labels, value in samples(text, "http_request_duration_seconds_count")
        if labels.get("route") == "/health"
    ]
    assert counts == [3]


# --- the gauges /metrics reads at the scrape (services/operational_gauges.py) ---------------


def gauge(text: str, name: str, **labels: str) -> float | None:
    """The one sample of `name` with these labels, or None when the scrape left it out."""
    found = [value for sample_labels, value in samples(text, name) if sample_labels == labels]
    assert len(found) <= 1, found
    return found[0] if found else None


async def test_metrics_show_an_old_pending_payment_though_no_worker_ran(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings
) -> None:
    """The worker is another process, which serves no /metrics: the API reads the age from
    the database itself, and shows the setting the alert compares it with."""
    text = (await client.get("/metrics")).text
    assert gauge(text, "oldest_pending_payment_age_seconds") == 0.0  # none pending yet

    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 9_000)
    ten_minutes_ago = utcnow() - timedelta(minutes=10)
    await collection(app, "payments").update_one(
        {"_id": payment.id}, {"$set": {"createdAt": ten_minutes_ago, "updatedAt": ten_minutes_ago}}
    )

    text = (await client.get("/metrics")).text
    age = gauge(text, "oldest_pending_payment_age_seconds")
    assert age is not None
    assert 600 <= age < 660
    assert gauge(text, "reconcile_after_seconds") == settings.reconcile_after_seconds
    assert gauge(text, "database_gauges_fresh") == 1.0
    assert samples(text, "reconciled_payments_total") == []  # no reconciler pass ran here


async def test_metrics_count_events_by_delivery_status_a_dead_one_included(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    """A dispatcher with a registry of its own (a worker process) retries an event until it
    is dead; the API's /metrics counts it from the database."""
    _, payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    text = (await client.get("/metrics")).text
    assert gauge(text, "webhook_events", status="pending") == 1.0
    assert gauge(text, "webhook_events", status="dead") == 0.0

    services = app.state.services
    now = [utcnow()]
    worker = EventDispatcher(
        services.settings,
        services.database,
        services.redis,
        services.webhooks,
        Metrics(),
        clock=lambda: now[0],
        jitter=lambda: 1.0,
    )
    receiver.fail_first = 10_000
    [stored] = await events_model.for_payment(services.database, payment["paymentId"])
    for _ in range(200):  # bounded: 24 h of retries is a few dozen attempts
        assert await worker.run_once() == 1
        event = await events_model.find_by_id(services.database, stored.id)
        assert event is not None
        if event.status == "dead":
            break
        now[0] = event.next_attempt_at
    else:
        pytest.fail("the event never went dead")

    text = (await client.get("/metrics")).text
    assert gauge(text, "webhook_events", status="dead") == 1.0
    assert gauge(text, "webhook_events", status="pending") == 0.0
    assert gauge(text, "webhook_events_dead_total") == 0.0  # the worker counted it, not this


async def test_metrics_show_both_dependencies_ready(client: httpx.AsyncClient) -> None:
    text = (await client.get("/metrics")).text
    assert gauge(text, "dependency_ready", dependency="mongodb") == 1.0
    assert gauge(text, "dependency_ready", dependency="redis") == 1.0


@pytest.mark.usefixtures("redis_unreachable")
async def test_metrics_answer_with_redis_down_and_say_so(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert gauge(response.text, "dependency_ready", dependency="redis") == 0.0
    assert gauge(response.text, "dependency_ready", dependency="mongodb") == 1.0
    assert gauge(response.text, "database_gauges_fresh") == 1.0
    assert gauge(response.text, "oldest_pending_payment_age_seconds") == 0.0


@pytest.mark.usefixtures("mongodb_unreachable")
async def test_metrics_answer_with_mongodb_down_leaving_its_figures_out(
    client: httpx.AsyncClient,
) -> None:
    """The figures read from MongoDB are left out (not shown stale); the readiness gauge and
    `database_gauges_fresh` say why."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert gauge(text, "dependency_ready", dependency="mongodb") == 0.0
    assert gauge(text, "dependency_ready", dependency="redis") == 1.0
    assert gauge(text, "database_gauges_fresh") == 0.0
    assert samples(text, "oldest_pending_payment_age_seconds") == []
    assert samples(text, "webhook_events") == []


async def test_metrics_leave_out_a_figure_whose_query_hangs_and_answer_in_time(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gauge((await client.get("/metrics")).text, "database_gauges_fresh") == 1.0

    async def hangs(*_: Any) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(payment_claims, "oldest_created_at", hangs)
    started = time.monotonic()
    response = await client.get("/metrics")
    assert time.monotonic() - started < GAUGE_REFRESH_TIMEOUT_SECONDS + 1.0
    assert response.status_code == 200
    assert gauge(response.text, "database_gauges_fresh") == 0.0
    assert samples(response.text, "oldest_pending_payment_age_seconds") == []
    assert samples(response.text, "webhook_events") == []
    assert gauge(response.text, "dependency_ready", dependency="mongodb") == 1.0
