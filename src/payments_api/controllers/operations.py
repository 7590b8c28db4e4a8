"""GET /ready and GET /metrics: the dependency checks as a status code, and the Prometheus
text after the scrape-time gauges are brought up to date."""

from __future__ import annotations

from payments_api.schemas.operations import Readiness
from payments_api.services import operational_gauges
from payments_api.services.readiness import check_dependencies
from payments_api.services.registry import Services


async def readiness(services: Services) -> tuple[Readiness, int]:
    """The body and status of GET /ready: 200 when every dependency answers, else 503."""
    checks = await check_dependencies(services.database, services.redis)
    ok = all(result == "ok" for result in checks.values())
    return Readiness(status="ready" if ok else "not_ready", checks=checks), 200 if ok else 503


async def metrics_text(services: Services) -> bytes:
    """The registry in Prometheus's text format, its database and readiness gauges read now
    (services/operational_gauges.py); a dependency that is down never fails it."""
    await operational_gauges.refresh(
        services.metrics, services.settings, services.database, services.redis
    )
    return services.metrics.render()
