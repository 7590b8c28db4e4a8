"""The outbox: an event per change of a payment's state, written in the same step as the
change. `dedupeKey` is unique, so repeating a step never writes a second event."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pymongo.errors import DuplicateKeyError

from payments_api.config.constants import EventType
from payments_api.config.database import Database, Session
from payments_api.models.base import Document, UtcDatetime

COLLECTION = "events"


class Event(Document):
    id: str = Field(alias="_id")
    type: EventType
    payment_id: str
    merchant_id: str
    dedupe_key: str
    data: dict[str, Any]
    status: Literal["pending", "delivered", "dead"] = "pending"
    created_at: UtcDatetime


async def append(db: Database, event: Event, session: Session = None) -> bool:
    """Write the event; False when this change already has its event."""
    try:
        await db[COLLECTION].insert_one(event.to_mongo(), session=session)
    except DuplicateKeyError:
        return False
    return True


async def for_payment(db: Database, payment_id: str) -> list[Event]:
    cursor = db[COLLECTION].find({"paymentId": payment_id}).sort("createdAt", 1)
    return [Event.from_mongo(raw) async for raw in cursor]
