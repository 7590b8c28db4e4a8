"""/api/v1/events (admin)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from payments_api.controllers import events as controller
from payments_api.errors import ForbiddenError, UnauthorizedError, ValidationFailed
from payments_api.middleware.auth import Admin, ServicesDep
from payments_api.schemas.errors import error_responses
from payments_api.schemas.events import EventListEnvelope, RedeliverEnvelope
from payments_api.services.events import EventNotFound

router = APIRouter(prefix="/api/v1/events", tags=["events"])


@router.get(
    "",
    response_model=EventListEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError, ValidationFailed),
)
async def list_events(
    payment_id: Annotated[str, Query(alias="paymentId", min_length=1, max_length=64)],
    _admin: Admin,
    services: ServicesDep,
) -> EventListEnvelope:
    return await controller.for_payment(services, payment_id)


@router.post(
    "/{eventId}/redeliver",
    status_code=202,
    response_model=RedeliverEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError, EventNotFound, ValidationFailed),
)
async def redeliver_event(
    event_id: Annotated[str, Path(alias="eventId", max_length=64)],
    _admin: Admin,
    services: ServicesDep,
) -> RedeliverEnvelope:
    return await controller.redeliver(services, event_id)
