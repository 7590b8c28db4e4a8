"""Daily spending: one document per (user, business day).

`spent` changes only together with `holds` (the ids of the payments holding part of it) in one
guarded update, so taking a hold twice or giving it back twice is impossible, and `spent` can
never pass the limit given with the hold.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pymongo.errors import DuplicateKeyError

from payments_api.config.database import Database, Session

COLLECTION = "daily_spending"


class HoldResult(Enum):
    HELD = "held"
    """Held, now or by an earlier attempt for the same payment."""
    OVER_LIMIT = "over_limit"
    LOST_RACE = "lost_race"
    """Another hold created the day's document first; try again (it exists now)."""


def document_id(user_id: str, day: str) -> str:
    return f"{user_id}:{day}"


async def try_hold(
    db: Database, user_id: str, day: str, payment_id: str, amount: int, limit: int
) -> HoldResult:
    """Add `amount` for `payment_id` if `spent` stays within `limit`."""
    doc_id = document_id(user_id, day)
    try:
        result = await db[COLLECTION].update_one(
            {"_id": doc_id, "spent": {"$lte": limit - amount}, "holds": {"$ne": payment_id}},
            {
                "$inc": {"spent": amount},
                "$push": {"holds": payment_id},
                "$setOnInsert": {"userId": user_id, "day": day},
            },
            upsert=True,
        )
    except DuplicateKeyError:
        current = await find(db, user_id, day)
        if current is None:
            return HoldResult.LOST_RACE
        if payment_id in current.get("holds", []):
            return HoldResult.HELD
        return HoldResult.LOST_RACE if current["spent"] + amount <= limit else HoldResult.OVER_LIMIT
    if result.upserted_id is not None or result.modified_count == 1:
        return HoldResult.HELD
    return HoldResult.OVER_LIMIT


async def release(
    db: Database, user_id: str, day: str, payment_id: str, amount: int, session: Session = None
) -> bool:
    """Give back what `payment_id` held; False when it held nothing (already given back)."""
    result = await db[COLLECTION].update_one(
        {"_id": document_id(user_id, day), "holds": payment_id},
        {"$inc": {"spent": -amount}, "$pull": {"holds": payment_id}},
        session=session,
    )
    return bool(result.modified_count == 1)


async def find(db: Database, user_id: str, day: str) -> dict[str, Any] | None:
    raw: dict[str, Any] | None = await db[COLLECTION].find_one({"_id": document_id(user_id, day)})
    return raw
