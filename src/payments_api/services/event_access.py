"""Events as their readers see them: the admin's list of a payment's events, a merchant's own
events page by page, and redelivery. A draft is no event yet: no reader sees it, and none can
have it delivered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from payments_api.config.constants import EventType
from payments_api.config.database import Database
from payments_api.errors import InvalidCursor, NotFoundError
from payments_api.models import event as event_store
from payments_api.models import merchant as merchant_store
from payments_api.models.event import Event
from payments_api.services.events import new_delivery
from payments_api.utils.clock import utcnow


class EventNotFound(NotFoundError):
    code = "EVENT_NOT_FOUND"
    message = "Event not found"


@dataclass(frozen=True, slots=True)
class EventQuery:
    """A page of a merchant's events: its filters, its size and where it starts."""

    limit: int
    payment_id: str | None = None
    type: EventType | None = None
    starting_after: str | None = None
    """An event id: the page holds the events older than that one."""


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[Event]
    has_more: bool


class EventService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def for_payment(self, payment_id: str) -> list[Event]:
        return await event_store.for_payment(self.db, payment_id)

    async def for_merchant(self, merchant_id: str, query: EventQuery) -> EventPage:
        """The merchant's own events, newest first; one more than the page is read to learn
        whether older ones match."""
        after = None
        if query.starting_after is not None:
            after = await self._own_event(merchant_id, query.starting_after)
            if after is None:
                raise InvalidCursor.unknown("startingAfter", "events")
        filters: dict[str, Any] = {}
        if query.payment_id is not None:
            filters["paymentId"] = query.payment_id
        if query.type is not None:
            filters["type"] = query.type.value
        found = await event_store.merchant_page(
            self.db, merchant_id, filters, after, query.limit + 1
        )
        return EventPage(found[: query.limit], has_more=len(found) > query.limit)

    async def redeliver_own(self, merchant_id: str, event_id: str) -> Event:
        """A merchant's redelivery of one of its own events (another's is not found)."""
        if await self._own_event(merchant_id, event_id) is None:
            raise EventNotFound()
        return await self.redeliver(event_id)

    async def redeliver(self, event_id: str) -> Event:
        """Deliver again from scratch: a delivery still pending is closed as dead (superseded)
        and a new one starts, due now."""
        event = await event_store.find_by_id(self.db, event_id)
        if event is None or event.status == "draft":
            raise EventNotFound()
        merchant = await merchant_store.find_by_id(self.db, event.merchant_id)
        now = utcnow()
        deliveries = [
            d.model_copy(update={"status": "dead"}) if d.status == "pending" else d
            for d in event.deliveries
        ]
        if merchant and merchant.webhook_url:
            deliveries.append(new_delivery(merchant.webhook_url, now))
        restarted = await event_store.restart_delivery(self.db, event_id, deliveries, now)
        if restarted is None:
            raise EventNotFound()
        return restarted

    async def _own_event(self, merchant_id: str, event_id: str) -> Event | None:
        """The merchant's event of that id; None for another's, a draft or an unknown id."""
        event = await event_store.find_by_id(self.db, event_id)
        if event is None or event.merchant_id != merchant_id or event.status == "draft":
            return None
        return event
