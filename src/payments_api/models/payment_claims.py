"""What reconcilers claim on payments: the reconciliation lease, and the re-checks of failures
for a charge that landed late. A lease is no state change: it moves neither `version` nor
`updatedAt`, so the read cache and the age a claim is judged by stay the payment's own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from payments_api.config.constants import PaymentStatus
from payments_api.config.database import Database
from payments_api.models.payment import COLLECTION, Payment


def _payment(raw: dict[str, Any] | None) -> Payment | None:
    return Payment.from_mongo(raw) if raw else None


async def claim_stale(
    db: Database,
    query: dict[str, Any],
    *,
    older_than: datetime,
    worker_id: str,
    now: datetime,
    lease_until: datetime,
) -> Payment | None:
    """Take the reconciliation lease on one payment matching `query` that has not changed
    since `older_than` and is not leased by a live reconciler. The lease is no state change:
    it moves neither `version` nor `updatedAt`."""
    raw = await db[COLLECTION].find_one_and_update(
        {
            **query,
            "updatedAt": {"$lte": older_than},
            "$or": [{"reconcileLockedUntil": None}, {"reconcileLockedUntil": {"$lte": now}}],
        },
        {"$set": {"reconcileLockedBy": worker_id, "reconcileLockedUntil": lease_until}},
        sort=[("updatedAt", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )
    return _payment(raw)


async def claim_recheck(db: Database, *, now: datetime, lease_until: datetime) -> Payment | None:
    """Take one failed payment whose re-check for a late charge is due; its next re-check
    moves to `lease_until` meanwhile (the lease), so no two reconcilers check it at once."""
    raw = await db[COLLECTION].find_one_and_update(
        {"nextRecheckAt": {"$lte": now}},
        {"$set": {"nextRecheckAt": lease_until}},
        sort=[("nextRecheckAt", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )
    return _payment(raw)


async def schedule_recheck(db: Database, payment_id: str, next_at: datetime | None) -> None:
    """The next re-check for a late charge, or (None) the end of the watch."""
    update: dict[str, Any] = (
        {"$set": {"nextRecheckAt": next_at}, "$inc": {"rechecks": 1}}
        if next_at is not None
        else {"$unset": {"nextRecheckAt": ""}}
    )
    await db[COLLECTION].update_one({"_id": payment_id}, update)


async def record_late_charge_refund(db: Database, payment_id: str, now: datetime) -> bool:
    """Note that the late charge of a failed payment was refunded, and stop watching it;
    False when another reconciler noted it first."""
    result = await db[COLLECTION].update_one(
        {
            "_id": payment_id,
            "status": PaymentStatus.FAILED.value,
            "lateChargeRefundedAt": None,
        },
        {"$set": {"lateChargeRefundedAt": now}, "$unset": {"nextRecheckAt": ""}},
    )
    return bool(result.modified_count == 1)


async def renew_reconcile_lease(
    db: Database, payment_id: str, worker_id: str, lease_until: datetime
) -> bool:
    """Move the reconciliation lease's end to `lease_until` while `worker_id` still holds it
    (False once another reconciler took it over). No state change, as for the claim."""
    result = await db[COLLECTION].update_one(
        {"_id": payment_id, "reconcileLockedBy": worker_id},
        {"$set": {"reconcileLockedUntil": lease_until}},
    )
    return bool(result.matched_count == 1)


async def oldest_created_at(db: Database, status: str) -> datetime | None:
    raw = await db[COLLECTION].find_one({"status": status}, sort=[("createdAt", ASCENDING)])
    return Payment.from_mongo(raw).created_at if raw else None
