"""Bodies of the event routes: the admin's and the merchant's own."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.schemas.common import ApiDatetime, CamelModel, Envelope
from payments_api.schemas.payments import PaymentOut

EventStatus = Literal["pending", "delivered", "dead"]


class AttemptOut(CamelModel):
    attempted_at: ApiDatetime
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryOut(CamelModel):
    delivery_id: str
    url: str
    status: EventStatus
    created_at: ApiDatetime
    attempts: list[AttemptOut]


class EventOut(CamelModel):
    event_id: str
    type: EventType
    payment_id: str
    merchant_id: str
    status: EventStatus
    published: bool
    created_at: ApiDatetime
    next_attempt_at: ApiDatetime | None
    data: dict[str, Any]
    deliveries: list[DeliveryOut]


class EventListEnvelope(Envelope):
    events: list[EventOut]


class RedeliverEnvelope(Envelope):
    message: str = "Event queued for redelivery"
    event: EventOut


class EventPagination(CamelModel):
    has_more: bool
    next_cursor: str | None
    """The last event's id when older ones match (the next page's `startingAfter`), else null."""


class EventPageEnvelope(Envelope):
    events: list[EventOut]
    pagination: EventPagination


class WebhookEventData(CamelModel):
    payment: PaymentOut = Field(description="The payment as the change left it")
    sequence: int = Field(
        ge=1,
        description="The change's place among the payment's changes (1, 2, 3 … with no gaps): "
        "a receiver that has seen sequence n drops anything ≤ n",
    )
    previous_status: PaymentStatus = Field(description="The status the change left")


class WebhookEvent(CamelModel):
    """The body of a webhook delivery (and of an entry of the Redis stream `payments:events`)."""

    id: str = Field(description="The event's id (`evt_…`): receivers dedupe by it")
    type: EventType
    created_at: ApiDatetime
    data: WebhookEventData
