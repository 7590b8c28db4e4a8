"""Events (admin): a payment's events with their deliveries, and redelivery."""

from __future__ import annotations

from payments_api.models.event import Event
from payments_api.schemas.events import (
    AttemptOut,
    DeliveryOut,
    EventListEnvelope,
    EventOut,
    RedeliverEnvelope,
)
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
