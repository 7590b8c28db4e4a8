"""/health (liveness), /ready (dependencies), /metrics (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from payments_api.controllers import operations
from payments_api.controllers.liveness import ROUTE_PATH, liveness_body
from payments_api.middleware.auth import ServicesDep
from payments_api.schemas.operations import Health, Readiness

router = APIRouter(tags=["operations"])


@router.get(ROUTE_PATH, response_model=Health)
async def health(request: Request) -> Response:
    """Declared here for the OpenAPI description and the router (a 405 for another method);
    a GET or HEAD is answered before routing, with this same body (middleware/liveness.py)."""
    started: float = request.app.state.started_at
    return Response(liveness_body(started), media_type="application/json")


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(services: ServicesDep) -> Response:
    body, status = await operations.readiness(services)
    return JSONResponse(body.model_dump(), status_code=status)


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """The service's counters and, read at this scrape from the shared database and
    dependencies, the gauges an alert needs whichever process did the work (the worker serves
    no /metrics of its own)."""
    return Response(await operations.metrics_text(services), media_type=CONTENT_TYPE_LATEST)
