"""The outbox: an event per change of a payment's state, written in the same step as the
change. `dedupeKey` is unique, so repeating a step never writes a second event.

A dispatcher claims an event with a lease (`lockedBy`, `lockedUntil`): a guarded
find-and-update, so two dispatchers never work on one event at once, and the event of a
dispatcher that died is taken over when its lease runs out. Every later write names the lease
holder, so a dispatcher whose lease was taken over cannot overwrite the new holder's work.

An event of a step that can lose to another outcome (settling a pending payment) is written as a
`draft`: no dispatcher takes it and no reader sees it until the step's compare-and-set has won
and published it; a step that lost discards it. So a merchant is never told of a change that
did not happen, even where there are no transactions. A step that retries its compare-and-set
(a refund's success, while other refunds of the payment move it on) rewrites its draft for each
try, only ever to a later change (`save_draft`), so the draft describes the try that won.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from payments_api.config.constants import EventType
from payments_api.config.database import Database, Session
from payments_api.models.base import Document, UtcDatetime
from payments_api.utils.clock import iso_utc

COLLECTION = "events"

EventStatus = Literal["draft", "pending", "delivered", "dead"]


class Attempt(Document):
    attempted_at: UtcDatetime
    status_code: int | None = None
    error: str | None = None
    duration_ms: float


class Delivery(Document):
    """One delivery of the event to the merchant's webhook; a redelivery starts a new one."""

    delivery_id: str
    url: str
    status: EventStatus = "pending"
    attempts: list[Attempt] = Field(default_factory=list)
    created_at: UtcDatetime


class Event(Document):
    id: str = Field(alias="_id")
    type: EventType
    payment_id: str
    merchant_id: str
    dedupe_key: str
    reference: str | None = None
    """Which change of its type this is, where a payment has several (a refund's id)."""
    data: dict[str, Any]
    status: EventStatus = "pending"
    published: bool = False
    deliveries: list[Delivery] = Field(default_factory=list)
    next_attempt_at: UtcDatetime
    locked_by: str | None = None
    locked_until: UtcDatetime | None = None
    created_at: UtcDatetime

    def envelope(self) -> dict[str, Any]:
        """The body a webhook receives and the stream carries."""
        return {
            "id": self.id,
            "type": self.type,
            "createdAt": iso_utc(self.created_at),
            "data": self.data,
        }


def _event(raw: dict[str, Any] | None) -> Event | None:
    return Event.from_mongo(raw) if raw else None


async def append(db: Database, event: Event, session: Session = None) -> bool:
    """Write the event; False when this change already has its event."""
    try:
        await db[COLLECTION].insert_one(event.to_mongo(), session=session)
    except DuplicateKeyError:
        return False
    return True


async def find_by_id(db: Database, event_id: str) -> Event | None:
    return _event(await db[COLLECTION].find_one({"_id": event_id}))


async def find_by_dedupe_key(db: Database, dedupe_key: str) -> Event | None:
    return _event(await db[COLLECTION].find_one({"dedupeKey": dedupe_key}))


async def for_payment(db: Database, payment_id: str) -> list[Event]:
    """The payment's events (drafts are not events yet)."""
    cursor = (
        db[COLLECTION]
        .find({"paymentId": payment_id, "status": {"$ne": "draft"}})
        .sort("createdAt", ASCENDING)
    )
    return [Event.from_mongo(raw) async for raw in cursor]


async def count_in_status(db: Database, status: EventStatus) -> int:
    """How many events are in `status` now: a count over the `event_due` index's leading
    field, so it reads index keys only (the /metrics gauge `webhook_events`)."""
    return int(await db[COLLECTION].count_documents({"status": status}))


async def save_draft(db: Database, event: Event, session: Session = None) -> None:
    """Write the draft of one try of a step, or make the draft an earlier try left describe
    this one when this try's change comes later (a higher `data.sequence`): so the draft holds
    the try that won its compare-and-set even when a slower, earlier try writes after it. A
    published event is never touched."""
    result = await db[COLLECTION].update_one(
        {
            "dedupeKey": event.dedupe_key,
            "status": "draft",
            "data.sequence": {"$lt": event.data["sequence"]},
        },
        {"$set": {"data": event.data}},
        session=session,
    )
    if result.matched_count == 0 and await find_by_dedupe_key(db, event.dedupe_key) is None:
        await append(db, event, session)


async def merchant_page(
    db: Database, merchant_id: str, filters: dict[str, Any], after: Event | None, limit: int
) -> list[Event]:
    """At most `limit` of the merchant's events matching `filters`, newest first (by
    `createdAt`, then id), older than `after` when given. Drafts are not events yet."""
    query: dict[str, Any] = {"merchantId": merchant_id, **filters, "status": {"$ne": "draft"}}
    if after is not None:
        query["$or"] = [
            {"createdAt": {"$lt": after.created_at}},
            {"createdAt": after.created_at, "_id": {"$lt": after.id}},
        ]
    cursor = (
        db[COLLECTION]
        .find(query)
        .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
        .limit(limit)
    )
    return [Event.from_mongo(raw) async for raw in cursor]


async def publish_draft(
    db: Database, dedupe_key: str, data: dict[str, Any] | None, session: Session = None
) -> bool:
    """Make the draft of a step that won deliverable, describing `data` (the state the step
    stored), or as the draft describes it when None (a draft left by an earlier attempt of the
    same step describes that attempt's); False when it was published already."""
    update: dict[str, Any] = {"status": "pending"}
    if data is not None:
        update["data"] = data
    result = await db[COLLECTION].update_one(
        {"dedupeKey": dedupe_key, "status": "draft"}, {"$set": update}, session=session
    )
    return bool(result.modified_count == 1)


async def discard_draft(db: Database, dedupe_key: str) -> bool:
    """Delete the draft of a step that lost its compare-and-set (never a published event)."""
    result = await db[COLLECTION].delete_one({"dedupeKey": dedupe_key, "status": "draft"})
    return bool(result.deleted_count == 1)


async def discard_drafts(
    db: Database, payment_id: str, *, keep: str | None = None, session: Session = None
) -> int:
    """Delete the payment's drafts (but the one whose dedupe key is `keep`): the events of
    steps that lost their compare-and-set. A published event is never deleted."""
    query: dict[str, Any] = {"paymentId": payment_id, "status": "draft"}
    if keep is not None:
        query["dedupeKey"] = {"$ne": keep}
    result = await db[COLLECTION].delete_many(query, session=session)
    return int(result.deleted_count)


async def stale_drafts(db: Database, older_than: datetime, limit: int) -> list[Event]:
    """Drafts left by steps that died before publishing or discarding them."""
    cursor = (
        db[COLLECTION]
        .find({"status": "draft", "nextAttemptAt": {"$lte": older_than}})
        .sort("nextAttemptAt", ASCENDING)
        .limit(limit)
    )
    return [Event.from_mongo(raw) async for raw in cursor]


async def claim_due(
    db: Database, worker_id: str, now: datetime, lease_until: datetime
) -> Event | None:
    """Take the lease on one pending event that is due and not leased by a live worker."""
    raw = await db[COLLECTION].find_one_and_update(
        {
            "status": "pending",
            "nextAttemptAt": {"$lte": now},
            "$or": [{"lockedUntil": None}, {"lockedUntil": {"$lte": now}}],
        },
        {"$set": {"lockedBy": worker_id, "lockedUntil": lease_until}},
        sort=[("nextAttemptAt", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )
    return _event(raw)


async def renew_lease(db: Database, event_id: str, worker_id: str, lease_until: datetime) -> bool:
    """Move the lease's end to `lease_until` while `worker_id` still holds it; False once it
    does not (finished, released, or taken over)."""
    result = await db[COLLECTION].update_one(
        {"_id": event_id, "lockedBy": worker_id}, {"$set": {"lockedUntil": lease_until}}
    )
    return bool(result.matched_count == 1)


async def update_leased(
    db: Database, event_id: str, worker_id: str, update: dict[str, Any]
) -> bool:
    """Apply `update` only while `worker_id` still holds the lease."""
    result = await db[COLLECTION].update_one({"_id": event_id, "lockedBy": worker_id}, update)
    return bool(result.matched_count == 1)


async def restart_delivery(
    db: Database, event_id: str, deliveries: list[Delivery], now: datetime
) -> Event | None:
    """Deliver again from scratch, whatever the state: these deliveries, due now, unleased
    (never a draft, which is no event yet)."""
    raw = await db[COLLECTION].find_one_and_update(
        {"_id": event_id, "status": {"$ne": "draft"}},
        {
            "$set": {
                "status": "pending",
                "published": False,
                "deliveries": [delivery.to_mongo() for delivery in deliveries],
                "nextAttemptAt": now,
                "lockedBy": None,
                "lockedUntil": None,
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    return _event(raw)
