"""The payment histories' queries: newest first by (createdAt, paymentId), a page by number or
the payments on one side of a cursor payment.

The order is total (`_id` breaks ties of `createdAt`), so a cursor is a position: the
payments older than it stay the same set however many newer ones are created meanwhile. Each
query is served in order by a history index of config/database.py (equality filters, then
`createdAt`, `_id` descending), read forwards or backwards, never sorted in memory.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING

from payments_api.config.database import Database
from payments_api.models.payment import COLLECTION, Payment

NEWEST_FIRST = [("createdAt", DESCENDING), ("_id", DESCENDING)]
OLDEST_FIRST = [("createdAt", ASCENDING), ("_id", ASCENDING)]


def _narrowed(filters: dict[str, Any], bound: str, instant: datetime) -> dict[str, Any]:
    """`filters` with `createdAt` also bounded by `bound` (`$lte` or `$gte`) at `instant`,
    kept within any range the filters already have."""
    created: dict[str, Any] = dict(filters.get("createdAt", {}))
    current = created.get(bound)
    if current is None:
        created[bound] = instant
    else:
        created[bound] = min(current, instant) if bound == "$lte" else max(current, instant)
    return {**filters, "createdAt": created}


def older_than(filters: dict[str, Any], cursor: Payment) -> dict[str, Any]:
    """The payments of `filters` after `cursor` in NEWEST_FIRST: `createdAt < c_t`, or
    `createdAt == c_t` and `_id < c_id`. Written as the range `createdAt <= c_t` (the index
    bound, so the scan starts at the cursor) and the tie-break `$or`, checked on the keys the
    scan reads: one index scan in order, where a top-level `$or` of the two cases could be
    planned as two scans merged."""
    query = _narrowed(filters, "$lte", cursor.created_at)
    query["$or"] = [{"createdAt": {"$lt": cursor.created_at}}, {"_id": {"$lt": cursor.id}}]
    return query


def newer_than(filters: dict[str, Any], cursor: Payment) -> dict[str, Any]:
    """The payments of `filters` before `cursor` in NEWEST_FIRST (the mirror of `older_than`)."""
    query = _narrowed(filters, "$gte", cursor.created_at)
    query["$or"] = [{"createdAt": {"$gt": cursor.created_at}}, {"_id": {"$gt": cursor.id}}]
    return query


async def _find(
    db: Database, query: dict[str, Any], order: list[tuple[str, int]], *, skip: int, limit: int
) -> list[Payment]:
    cursor = db[COLLECTION].find(query).sort(order).skip(skip).limit(limit)
    return [Payment.from_mongo(raw) async for raw in cursor]


async def numbered_page(
    db: Database, filters: dict[str, Any], *, skip: int, limit: int
) -> tuple[list[Payment], int]:
    """Up to `limit` payments of `filters` after the first `skip`, newest first, and the
    total count of `filters`."""
    payments = await _find(db, filters, NEWEST_FIRST, skip=skip, limit=limit)
    total: int = await db[COLLECTION].count_documents(filters)
    return payments, total


async def after(
    db: Database, filters: dict[str, Any], cursor: Payment, *, limit: int
) -> list[Payment]:
    """Up to `limit` payments of `filters` older than `cursor`, newest first."""
    return await _find(db, older_than(filters, cursor), NEWEST_FIRST, skip=0, limit=limit)


async def before(
    db: Database, filters: dict[str, Any], cursor: Payment, *, limit: int
) -> list[Payment]:
    """The `limit` payments of `filters` newer than `cursor` nearest to it, newest first (read
    from the cursor upwards, then turned round)."""
    nearest = await _find(db, newer_than(filters, cursor), OLDEST_FIRST, skip=0, limit=limit)
    return nearest[::-1]


async def any_older(db: Database, filters: dict[str, Any], than: Payment) -> bool:
    return bool(await db[COLLECTION].find_one(older_than(filters, than), {"_id": 1}))


async def any_newer(db: Database, filters: dict[str, Any], than: Payment) -> bool:
    return bool(await db[COLLECTION].find_one(newer_than(filters, than), {"_id": 1}))
