"""Events: a payment's events with their deliveries (admin), a merchant's own events page by
page, and redelivery (both)."""

from __future__ import annotations

from payments_api.config.constants import EventType
from payments_api.controllers.history_query import MAX_PAGE_SIZE
from payments_api.models.event import Event
from payments_api.schemas.events import (
    AttemptOut,
    DeliveryOut,
    EventListEnvelope,
    EventOut,
    EventPageEnvelope,
    EventPagination,
    RedeliverEnvelope,
)
from payments_api.services.event_access import EventQuery
from payments_api.services.registry import Services


def _event_out(event: Event) -> EventOut:
    return EventOut(
        event_id=event.id,
        type=event.type,
        payment_id=event.payment_id,
        merchant_id=event.merchant_id,
        status=event.status,
        published=event.published,
        created_at=event.created_at,
        next_attempt_at=event.next_attempt_at if event.status == "pending" else None,
        data=event.data,
        deliveries=[
            DeliveryOut(
                delivery_id=delivery.delivery_id,
                url=delivery.url,
                status=delivery.status,
                created_at=delivery.created_at,
                attempts=[
                    AttemptOut(
                        attempted_at=attempt.attempted_at,
                        status_code=attempt.status_code,
                        error=attempt.error,
                        duration_ms=attempt.duration_ms,
                    )
                    for attempt in delivery.attempts
                ],
            )
            for delivery in event.deliveries
        ],
    )


async def for_payment(services: Services, payment_id: str) -> EventListEnvelope:
    found = await services.events.for_payment(payment_id)
    return EventListEnvelope(events=[_event_out(event) for event in found])


async def redeliver(services: Services, event_id: str) -> RedeliverEnvelope:
    return RedeliverEnvelope(event=_event_out(await services.events.redeliver(event_id)))


async def for_merchant(
    services: Services,
    merchant_id: str,
    *,
    payment_id: str | None,
    event_type: EventType | None,
    limit: int,
    starting_after: str | None,
) -> EventPageEnvelope:
    """A page of the merchant's own events; `limit` above the page size is clamped, as the
    payment histories' is."""
    query = EventQuery(
        limit=min(limit, MAX_PAGE_SIZE),
        payment_id=payment_id,
        type=event_type,
        starting_after=starting_after,
    )
    page = await services.events.for_merchant(merchant_id, query)
    events = [_event_out(event) for event in page.events]
    next_cursor = events[-1].event_id if page.has_more and events else None
    return EventPageEnvelope(
        events=events, pagination=EventPagination(has_more=page.has_more, next_cursor=next_cursor)
    )


async def redeliver_own(services: Services, merchant_id: str, event_id: str) -> RedeliverEnvelope:
    event = await services.events.redeliver_own(merchant_id, event_id)
    return RedeliverEnvelope(event=_event_out(event))
