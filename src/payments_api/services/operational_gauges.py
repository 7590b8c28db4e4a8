"""The gauges /metrics reads afresh at each scrape, from the shared database and dependencies.

The work they describe is done by whichever process holds it: the worker
(`payments-api worker`, which serves no HTTP) settles pending payments and delivers events, and
each of `serve --workers N` keeps a registry of its own. Counters set where the work ran never
reach the API's /metrics from there; these figures do, because every API process reads them
from the one database the deployment shares, when it is scraped:

- `oldest_pending_payment_age_seconds` and `webhook_events{status}` (pending, dead): two
  indexed reads and a count each. Bounded together by GAUGE_REFRESH_TIMEOUT_SECONDS; when they
  fail or time out they are left out of the scrape (`database_gauges_fresh` goes 0), never
  shown with an old value that would keep an alert quiet or firing on stale news.
- `dependency_ready{dependency}`: 1/0 from the same checks as GET /ready.
- `reconcile_after_seconds`: the setting, so the alert compares against the deployment's own.

A failed dependency never fails the scrape: its gauges say so, and /metrics answers 200.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from payments_api.config.constants import GAUGE_REFRESH_TIMEOUT_SECONDS, PaymentStatus
from payments_api.config.database import Database
from payments_api.config.redis import RedisClient
from payments_api.config.settings import Settings
from payments_api.models import event as event_store
from payments_api.models import payment_claims
from payments_api.models.event import EventStatus
from payments_api.services.readiness import check_dependencies
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import get_logger
from payments_api.utils.metrics import Metrics

logger = get_logger("operational_gauges")

COUNTED_EVENT_STATUSES: tuple[EventStatus, ...] = ("pending", "dead")
"""The delivery statuses counted at each scrape: the backlog and what was given up on, both
few while all is well. `delivered` is not counted: it is nearly every event ever written, a
count over it grows with the collection; the worker's counters show deliveries as they happen."""


async def _database_figures(
    database: Database, now: datetime
) -> tuple[float, dict[tuple[str, ...], float]]:
    """The oldest pending payment's age (0 when none) and the events in each counted status."""
    oldest, counts = await asyncio.gather(
        payment_claims.oldest_created_at(database, PaymentStatus.PENDING.value),
        asyncio.gather(
            *(event_store.count_in_status(database, status) for status in COUNTED_EVENT_STATUSES)
        ),
    )
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    by_status: dict[tuple[str, ...], float] = {
        (status,): count for status, count in zip(COUNTED_EVENT_STATUSES, counts, strict=True)
    }
    return age, by_status


async def _refresh_database_figures(metrics: Metrics, database: Database) -> None:
    try:
        age, by_status = await asyncio.wait_for(
            _database_figures(database, utcnow()), timeout=GAUGE_REFRESH_TIMEOUT_SECONDS
        )
    except Exception as exc:  # a timeout or any database error: leave the figures out
        logger.warning("metrics: database figures not read", error=type(exc).__name__)
        metrics.oldest_pending_age.clear()
        metrics.webhook_events.clear()
        metrics.database_gauges_fresh.set(0)
        return
    metrics.oldest_pending_age.set(age)
    metrics.webhook_events.replace(by_status)
    metrics.database_gauges_fresh.set(1)


async def _refresh_readiness(metrics: Metrics, database: Database, redis: RedisClient) -> None:
    checks = await check_dependencies(database, redis)
    for dependency, result in checks.items():
        metrics.dependency_ready.labels(dependency).set(1 if result == "ok" else 0)


async def refresh(
    metrics: Metrics, settings: Settings, database: Database, redis: RedisClient
) -> None:
    """Bring the scrape-time gauges up to date; returns within about a second, and raises for
    no dependency's failure."""
    metrics.reconcile_after.set(settings.reconcile_after_seconds)
    await asyncio.gather(
        _refresh_database_figures(metrics, database),
        _refresh_readiness(metrics, database, redis),
    )
