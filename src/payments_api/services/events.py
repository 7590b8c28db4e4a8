"""The outbox side of events: build the event that describes a change, to be written in the
same step as the change. (Delivery to the stream and to webhooks is the dispatcher's job.)"""

from __future__ import annotations

from datetime import datetime

from payments_api.config.constants import EventType
from payments_api.models.event import Event
from payments_api.models.payment import Payment, public_view
from payments_api.utils import ids


def payment_event(
    event_type: EventType, payment: Payment, now: datetime, reference: str | None = None
) -> Event:
    """The event of one change; `reference` tells apart changes of one type (refunds)."""
    return Event(
        id=ids.event_id(),
        type=event_type,
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        dedupe_key=f"{event_type.value}:{payment.id}:{reference or ''}",
        data={"payment": public_view(payment)},
        created_at=now,
    )
