"""Refunds of a payment, each with its own id, amount and gateway outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from pymongo import ReturnDocument

from payments_api.config.database import Database, Session
from payments_api.models.base import Document, UtcDatetime

COLLECTION = "refunds"

RefundStatus = Literal["pending", "succeeded", "failed"]


class Refund(Document):
    id: str = Field(alias="_id")
    payment_id: str
    user_id: str
    merchant_id: str
    amount: int
    reason: str
    metadata: dict[str, str] = Field(default_factory=dict)
    status: RefundStatus
    requested_by: str
    idempotency_scope: str | None = None
    """`<requester>:<Idempotency-Key>` when the request carried one (unique, sparse)."""
    request_fingerprint: str | None = None
    failure_code: str | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime


async def insert(db: Database, refund: Refund, session: Session = None) -> None:
    await db[COLLECTION].insert_one(refund.to_mongo(), session=session)


async def find_by_id(db: Database, refund_id: str) -> Refund | None:
    raw = await db[COLLECTION].find_one({"_id": refund_id})
    return Refund.from_mongo(raw) if raw else None


async def find_by_idempotency_scope(db: Database, scope: str) -> Refund | None:
    raw = await db[COLLECTION].find_one({"idempotencyScope": scope})
    return Refund.from_mongo(raw) if raw else None


async def set_status(
    db: Database,
    refund_id: str,
    status: RefundStatus,
    *,
    failure_code: str | None = None,
    session: Session = None,
) -> Refund | None:
    """Move a pending refund to its outcome; None if it was no longer pending. A failed refund
    lets go of its Idempotency-Key (it refunded nothing, so a retry with the key tries again)."""
    update: dict[str, Any] = {"$set": {"status": status, "failureCode": failure_code}}
    if status == "failed":
        update["$unset"] = {"idempotencyScope": ""}
    raw = await db[COLLECTION].find_one_and_update(
        {"_id": refund_id, "status": "pending"},
        update,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    return Refund.from_mongo(raw) if raw else None


async def for_payment(db: Database, payment_id: str) -> list[Refund]:
    cursor = db[COLLECTION].find({"paymentId": payment_id}).sort("createdAt", 1)
    return [Refund.from_mongo(raw) async for raw in cursor]


async def delete(db: Database, refund_id: str) -> None:
    """Remove a refund that never reserved anything (its request was refused)."""
    await db[COLLECTION].delete_one({"_id": refund_id, "status": "pending"})


async def stale_pending(db: Database, older_than: datetime, limit: int) -> list[Refund]:
    cursor = (
        db[COLLECTION].find({"status": "pending", "createdAt": {"$lte": older_than}}).limit(limit)
    )
    return [Refund.from_mongo(raw) async for raw in cursor]
