"""/health (liveness), /ready (dependencies), /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from payments_api.config.constants import READINESS_TIMEOUT_SECONDS
from payments_api.config.redis import check_redis
from payments_api.controllers.liveness import ROUTE_PATH, liveness_body
from payments_api.middleware.auth import ServicesDep
from payments_api.schemas.common import CamelModel
from payments_api.utils.logger import get_logger

router = APIRouter(tags=["operations"])
logger = get_logger("health")

CheckResult = Literal["ok", "error", "timeout"]


class Memory(CamelModel):
    rss: int
    max_rss: int


class Health(CamelModel):
    status: Literal["healthy"] = "healthy"
    timestamp: str
    uptime: float
    memory: Memory
    version: str


class Readiness(CamelModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckResult]


@router.get(ROUTE_PATH, response_model=Health)
async def health(request: Request) -> Response:
    """Declared here for the OpenAPI description and the router (a 405 for another method);
    a GET or HEAD is answered before routing, with this same body (middleware/liveness.py)."""
    started: float = request.app.state.started_at
    return Response(liveness_body(started), media_type="application/json")


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


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(services: ServicesDep) -> Response:
    mongodb, redis = await asyncio.gather(
        _check("mongodb", services.database.ping()), _check("redis", check_redis(services.redis))
    )
    checks: dict[str, CheckResult] = {"mongodb": mongodb, "redis": redis}
    ok = all(result == "ok" for result in checks.values())
    body = Readiness(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
