"""Merchants: who gets paid. The API key is stored only as its SHA-256 hash."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from payments_api.config.database import Database
from payments_api.models.base import Document, UtcDatetime

COLLECTION = "merchants"


class Merchant(Document):
    id: str = Field(alias="_id")
    name: str
    category: str
    webhook_url: str | None = None
    webhook_secret: str
    previous_webhook_secret: str | None = None
    """The secret a rotation replaced, still signing deliveries until it expires."""
    previous_webhook_secret_expires_at: UtcDatetime | None = None
    api_key_hash: str
    api_key_prefix: str
    is_active: bool = True
    created_at: UtcDatetime
    updated_at: UtcDatetime

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets a delivery is signed with now: the current one, then the one it
        replaced while that is in its grace period."""
        expires = self.previous_webhook_secret_expires_at
        if self.previous_webhook_secret and expires is not None and now < expires:
            return [self.webhook_secret, self.previous_webhook_secret]
        return [self.webhook_secret]


async def insert(db: Database, merchant: Merchant) -> None:
    await db[COLLECTION].insert_one(merchant.to_mongo())


async def find_by_id(db: Database, merchant_id: str) -> Merchant | None:
    raw = await db[COLLECTION].find_one({"_id": merchant_id})
    return Merchant.from_mongo(raw) if raw else None


async def find_by_api_key_hash(db: Database, api_key_hash: str) -> Merchant | None:
    raw = await db[COLLECTION].find_one({"apiKeyHash": api_key_hash})
    return Merchant.from_mongo(raw) if raw else None
