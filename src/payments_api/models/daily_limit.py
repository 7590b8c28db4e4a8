"""Daily spending: one document per (user, business day).

`spent` changes only together with `holds` (the ids of the payments holding part of it) in one
guarded update, so taking a hold twice or giving it back twice is impossible, and `spent` can
never pass the limit given with the hold. A capture of less than was authorized gives back the
rest of its hold once, moving the payment from `holds` to `trimmed` (a hold cut to what was
captured); a release then gives back what is left, from whichever list holds it.
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


async def trim(
    db: Database, user_id: str, day: str, payment_id: str, by: int, session: Session = None
) -> bool:
    """Give back `by` of what `payment_id` holds, at most once: its id moves from `holds` to
    `trimmed` in the same update. False when it was trimmed already (or holds nothing)."""
    result = await db[COLLECTION].update_one(
        {"_id": document_id(user_id, day), "holds": payment_id},
        {"$inc": {"spent": -by}, "$pull": {"holds": payment_id}, "$push": {"trimmed": payment_id}},
        session=session,
    )
    return bool(result.modified_count == 1)


async def release(
    db: Database,
    user_id: str,
    day: str,
    payment_id: str,
    amount: int,
    *,
    trimmed_to: int,
    session: Session = None,
) -> bool:
    """Give back what `payment_id` holds: `amount`, or `trimmed_to` once its hold was trimmed.
    False when it held nothing (already given back). A hold is trimmed only by a capture, and
    released only by a void, a failure or a cancel — never at once with a capture — so which
    list holds the id cannot change between the two updates."""
    doc_id = document_id(user_id, day)
    result = await db[COLLECTION].update_one(
        {"_id": doc_id, "holds": payment_id},
        {"$inc": {"spent": -amount}, "$pull": {"holds": payment_id}},
        session=session,
    )
    if result.modified_count == 1:
        return True
    result = await db[COLLECTION].update_one(
        {"_id": doc_id, "trimmed": payment_id},
        {"$inc": {"spent": -trimmed_to}, "$pull": {"trimmed": payment_id}},
        session=session,
    )
    return bool(result.modified_count == 1)


async def find(db: Database, user_id: str, day: str) -> dict[str, Any] | None:
    raw: dict[str, Any] | None = await db[COLLECTION].find_one({"_id": document_id(user_id, day)})
    return raw
