"""A merchant's secret API keys: the keys themselves in the merchant document (`apiKeys`), and
a record per key in `api_keys` that finds a key by the hash of its secret.

The merchant document is the authority on which keys are live: every change (make, roll,
revoke) is one compare-and-set of the whole list against `keysVersion`, so the limits that span
keys (at most five active, never none) hold under any concurrency, with or without
transactions. A key's record — the SHA-256 of its secret (the secret itself is shown once, when
the key is made), its merchant and when it was last used — is written before the key joins the
list and dropped after it leaves; a record whose key is not in the list authenticates nothing.

`lastUsedAt` is written at most once a minute per key, across processes: each write is guarded
by the value it replaces (never set, or older than a minute).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from payments_api.config.database import Database
from payments_api.models.base import Document, UtcDatetime

COLLECTION = "api_keys"


class ApiKey(Document):
    """A key as its merchant's document holds it."""

    key_id: str
    name: str | None = None
    prefix: str
    """The secret's first characters, so a merchant can tell its keys apart."""
    created_at: UtcDatetime
    expires_at: UtcDatetime | None = None
    """Set when the key is rolled: it keeps working until then, so a merchant can switch its
    servers to the new key without downtime."""

    def works_at(self, now: datetime) -> bool:
        return self.expires_at is None or now < self.expires_at

    @property
    def rolled(self) -> bool:
        return self.expires_at is not None


class KeyRecord(Document):
    """How a key is found from its secret, and when it was last used."""

    id: str = Field(alias="_id")
    """The key's `keyId`."""
    key_hash: str
    merchant_id: str
    last_used_at: UtcDatetime | None = None


async def insert_record(db: Database, record: KeyRecord) -> None:
    await db[COLLECTION].insert_one(record.to_mongo())


async def find_record(db: Database, key_hash: str) -> KeyRecord | None:
    raw = await db[COLLECTION].find_one({"keyHash": key_hash})
    return KeyRecord.from_mongo(raw) if raw else None


async def delete_records(db: Database, key_ids: list[str]) -> None:
    if key_ids:
        await db[COLLECTION].delete_many({"_id": {"$in": key_ids}})


async def touch(db: Database, key_id: str, now: datetime, not_since: datetime) -> bool:
    """Record that `key_id` was used at `now`, unless that was recorded at `not_since` or
    later; whether this call wrote it."""
    for unless in ({"lastUsedAt": None}, {"lastUsedAt": {"$lt": not_since}}):
        result = await db[COLLECTION].update_one(
            {"_id": key_id, **unless}, {"$set": {"lastUsedAt": now}}
        )
        if result.modified_count:
            return True
    return False


async def last_used(db: Database, key_ids: list[str]) -> dict[str, datetime]:
    cursor = db[COLLECTION].find({"_id": {"$in": key_ids}}, {"lastUsedAt": 1})
    return {raw["_id"]: raw["lastUsedAt"] async for raw in cursor if raw.get("lastUsedAt")}
