"""/api/v1/events (admin) and /api/v1/merchants/me/events (the merchant's own)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from payments_api.config.constants import MAX_QUERY_INTEGER, EventType
from payments_api.controllers import events as controller
from payments_api.errors import (
    ForbiddenError,
    InvalidCursor,
    UnauthorizedError,
    ValidationFailed,
)
from payments_api.middleware.auth import Admin, CurrentMerchant, ServicesDep
from payments_api.schemas.errors import error_responses
from payments_api.schemas.events import EventListEnvelope, EventPageEnvelope, RedeliverEnvelope
from payments_api.services.event_access import EventNotFound

router = APIRouter(prefix="/api/v1/events", tags=["events"])
merchant_router = APIRouter(prefix="/api/v1/merchants/me/events", tags=["events"])

EventId = Annotated[str, Path(alias="eventId", max_length=64)]


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
    event_id: EventId, _admin: Admin, services: ServicesDep
) -> RedeliverEnvelope:
    return await controller.redeliver(services, event_id)


@merchant_router.get(
    "",
    response_model=EventPageEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError, ValidationFailed, InvalidCursor),
)
async def list_own_events(
    merchant: CurrentMerchant,
    services: ServicesDep,
    payment_id: Annotated[str | None, Query(alias="paymentId", min_length=1, max_length=64)] = None,
    event_type: Annotated[EventType | None, Query(alias="type")] = None,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_QUERY_INTEGER, description="1-100; larger values are clamped to 100"),
    ] = 20,
    starting_after: Annotated[
        str | None,
        Query(
            alias="startingAfter",
            min_length=1,
            max_length=64,
            description="An eventId of yours: the page holds the events older than it",
        ),
    ] = None,
) -> EventPageEnvelope:
    return await controller.for_merchant(
        services,
        merchant.id,
        payment_id=payment_id,
        event_type=event_type,
        limit=limit,
        starting_after=starting_after,
    )


@merchant_router.post(
    "/{eventId}/redeliver",
    status_code=202,
    response_model=RedeliverEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError, EventNotFound, ValidationFailed),
)
async def redeliver_own_event(
    event_id: EventId, merchant: CurrentMerchant, services: ServicesDep
) -> RedeliverEnvelope:
    return await controller.redeliver_own(services, merchant.id, event_id)
