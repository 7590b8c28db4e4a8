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
