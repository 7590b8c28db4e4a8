"""The append-only ledger (`transactions`): one record per money movement.

A record's `reference` (the paymentId for a payment or cancel, the refundId for a refund) is
unique per type, so writing the same movement twice is a no-op, never a second record.

Append-only for movements that happened. The one record ever removed is the `payment` record
a settlement writes before its compare-and-set, when that compare-and-set lost to another
outcome (the money never moved): see `discard`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from pymongo.errors import DuplicateKeyError

from payments_api.config.database import Database, Session
from payments_api.models.base import Document, UtcDatetime
from payments_api.models.payment import Payment
from payments_api.utils import ids

COLLECTION = "transactions"

LedgerType = Literal["payment", "refund", "cancel"]


class LedgerRecord(Document):
    id: str = Field(alias="_id")
    payment_id: str
    user_id: str
    merchant_id: str
    type: LedgerType
    reference: str
    amount: int
    status: Literal["succeeded"] = "succeeded"
    description: str
    created_at: UtcDatetime


async def record_movement(
    db: Database,
    payment: Payment,
    type_: LedgerType,
    *,
    reference: str,
    amount: int,
    description: str,
    now: datetime,
    session: Session = None,
) -> bool:
    """Append the record of one money movement of `payment`; False when already recorded."""
    record = LedgerRecord(
        id=ids.transaction_id(),
        payment_id=payment.id,
        user_id=payment.user_id,
        merchant_id=payment.merchant_id,
        type=type_,
        reference=reference,
        amount=amount,
        description=description,
        created_at=now,
    )
    return await append(db, record, session)


async def append(db: Database, record: LedgerRecord, session: Session = None) -> bool:
    """Write the record; False when this movement was already recorded."""
    try:
        await db[COLLECTION].insert_one(record.to_mongo(), session=session)
    except DuplicateKeyError:
        return False
    return True


async def discard(db: Database, type_: LedgerType, reference: str, session: Session = None) -> bool:
    """Remove the record of a movement that did not happen (its step lost its
    compare-and-set); True when there was one."""
    result = await db[COLLECTION].delete_one(
        {"type": type_, "reference": reference}, session=session
    )
    return bool(result.deleted_count == 1)


async def for_payment(db: Database, payment_id: str) -> list[LedgerRecord]:
    cursor = db[COLLECTION].find({"paymentId": payment_id}).sort("createdAt", 1)
    return [LedgerRecord.from_mongo(raw) async for raw in cursor]


async def has_movement(db: Database, type_: LedgerType, reference: str) -> bool:
    count: int = await db[COLLECTION].count_documents(
        {"type": type_, "reference": reference}, limit=1
    )
    return count > 0
