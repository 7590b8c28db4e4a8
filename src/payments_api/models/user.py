"""Users: the people who pay. Motor calls on the `users` collection live here only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from pymongo import ReturnDocument

from payments_api.config.constants import Role
from payments_api.config.database import Database, Session
from payments_api.models.base import Document, UtcDatetime

COLLECTION = "users"


class UserStats(Document):
    """Totals of the user's completed payments, changed in the completing transaction."""

    total_transactions: int = 0
    total_amount: int = 0
    last_transaction_at: UtcDatetime | None = None


class User(Document):
    id: str = Field(alias="_id")
    email: str
    password_hash: str
    name: str
    phone_number: str | None = None
    phone_key: str | None = None
    """The phone number's digits (and leading +): two spellings of one number share it."""
    role: Role = Role.USER
    daily_limit: int
    is_active: bool = True
    stats: UserStats = Field(default_factory=UserStats)
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_active_admin(self) -> bool:
        """An admin who may act as one now (a deactivated admin may not)."""
        return self.is_admin and self.is_active


async def insert(db: Database, user: User, session: Session = None) -> None:
    await db[COLLECTION].insert_one(user.to_mongo(), session=session)


async def find_by_id(db: Database, user_id: str, session: Session = None) -> User | None:
    raw = await db[COLLECTION].find_one({"_id": user_id}, session=session)
    return User.from_mongo(raw) if raw else None


async def find_by_email(db: Database, email: str) -> User | None:
    raw = await db[COLLECTION].find_one({"email": email})
    return User.from_mongo(raw) if raw else None


async def exists_with(db: Database, field: str, value: str) -> bool:
    count: int = await db[COLLECTION].count_documents({field: value}, limit=1)
    return count > 0


async def update(db: Database, user_id: str, changes: dict[str, Any]) -> User | None:
    """Set stored fields (by their stored names); None when the user does not exist."""
    raw = await db[COLLECTION].find_one_and_update(
        {"_id": user_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
    )
    return User.from_mongo(raw) if raw else None


# --- the last-admin guard -------------------------------------------------------------------
# A change that may take an admin away (demotion, deactivation) first records itself on the
# user it changes, in `pendingAdminExits` ({id, until}: a short lease), then looks for another
# active admin with no pending exit of its own, then applies itself only while its record is
# there and unexpired. Of two such changes running at once, each records itself before it
# looks, so at least one sees the other's record: two admins demoting each other cannot both
# win, with or without transactions. A record left by a process that died expires.

PENDING_EXITS = "pendingAdminExits"


async def record_pending_exit(
    db: Database, user_id: str, exit_id: str, until: datetime
) -> User | None:
    """Record a change that may take `user_id` away as an admin; the user as it is now, or
    None when there is no such user."""
    raw = await db[COLLECTION].find_one_and_update(
        {"_id": user_id},
        {"$push": {PENDING_EXITS: {"id": exit_id, "until": until}}},
        return_document=ReturnDocument.AFTER,
    )
    return User.from_mongo(raw) if raw else None


async def another_admin_stays(db: Database, user_id: str, now: datetime) -> bool:
    """Whether an active admin other than `user_id` exists that no change is taking away."""
    count: int = await db[COLLECTION].count_documents(
        {
            "_id": {"$ne": user_id},
            "role": Role.ADMIN.value,
            "isActive": True,
            PENDING_EXITS: {"$not": {"$elemMatch": {"until": {"$gt": now}}}},
        },
        limit=1,
    )
    return count > 0


async def apply_pending_exit(
    db: Database, user_id: str, exit_id: str, changes: dict[str, Any], now: datetime
) -> User | None:
    """Set `changes` (stored names) if the exit `exit_id` is still recorded and unexpired, and
    drop its record; the changed user, or None when the record has gone or expired."""
    raw = await db[COLLECTION].find_one_and_update(
        {"_id": user_id, PENDING_EXITS: {"$elemMatch": {"id": exit_id, "until": {"$gt": now}}}},
        {"$set": changes, "$pull": {PENDING_EXITS: {"id": exit_id}}},
        return_document=ReturnDocument.AFTER,
    )
    return User.from_mongo(raw) if raw else None


async def drop_pending_exit(db: Database, user_id: str, exit_id: str) -> None:
    await db[COLLECTION].update_one({"_id": user_id}, {"$pull": {PENDING_EXITS: {"id": exit_id}}})


async def record_completed_payment(
    db: Database, user_id: str, amount: int, at: datetime, session: Session = None
) -> None:
    await db[COLLECTION].update_one(
        {"_id": user_id},
        {
            "$inc": {"stats.totalTransactions": 1, "stats.totalAmount": amount},
            "$max": {"stats.lastTransactionAt": at},
        },
        session=session,
    )
