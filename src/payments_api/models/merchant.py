"""Merchants: who gets paid. Which API keys are live is kept in the document (models/api_key.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field
from pymongo import ReturnDocument

from payments_api.config.database import Database
from payments_api.models import api_key as api_key_store
from payments_api.models.api_key import ApiKey
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
    api_keys: list[ApiKey]
    keys_version: int = 0
    """Bumped by every change to `api_keys`: the compare-and-set that serialises them."""
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

    def key(self, key_id: str) -> ApiKey | None:
        return next((key for key in self.api_keys if key.key_id == key_id), None)

    def live_keys(self, now: datetime) -> list[ApiKey]:
        return [key for key in self.api_keys if key.works_at(now)]

    @property
    def api_key_prefix(self) -> str | None:
        """The prefix of the newest key that is not on its way out."""
        active = [key for key in self.api_keys if not key.rolled]
        return max(active, key=lambda key: key.created_at).prefix if active else None


def _merchant(raw: dict[str, Any] | None) -> Merchant | None:
    return Merchant.from_mongo(raw) if raw else None


async def insert(db: Database, merchant: Merchant) -> None:
    await db[COLLECTION].insert_one(merchant.to_mongo())


async def find_by_id(db: Database, merchant_id: str) -> Merchant | None:
    return _merchant(await db[COLLECTION].find_one({"_id": merchant_id}))


async def adopt_legacy_keys(db: Database) -> int:
    """Turn the one API key of each merchant stored by v1.0 (`apiKeyHash` and `apiKeyPrefix`
    on the merchant) into its first key of today's shape; how many were turned."""
    moved = 0
    legacy = db[COLLECTION].find({"apiKeyHash": {"$exists": True}, "apiKeys": {"$exists": False}})
    async for raw in legacy:
        key_id = f"key_{raw['_id'].removeprefix('mch_')}"
        key = ApiKey(
            key_id=key_id,
            name="default",
            prefix=raw.get("apiKeyPrefix", ""),
            created_at=raw["createdAt"],
        )
        record = {"_id": key_id, "keyHash": raw["apiKeyHash"], "merchantId": raw["_id"]}
        await db[api_key_store.COLLECTION].update_one(
            {"_id": key_id}, {"$setOnInsert": record}, upsert=True
        )
        result = await db[COLLECTION].update_one(
            {"_id": raw["_id"], "apiKeys": {"$exists": False}},
            {
                "$set": {"apiKeys": [key.to_mongo()], "keysVersion": 0},
                "$unset": {"apiKeyHash": "", "apiKeyPrefix": ""},
            },
        )
        moved += result.modified_count
    return moved


async def update(db: Database, merchant_id: str, changes: dict[str, Any]) -> Merchant | None:
    """Set stored fields (by their stored names); None when the merchant does not exist."""
    raw = await db[COLLECTION].find_one_and_update(
        {"_id": merchant_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
    )
    return _merchant(raw)


async def replace_keys(
    db: Database, merchant: Merchant, keys: list[ApiKey], now: datetime
) -> Merchant | None:
    """Store `keys` as the merchant's keys if they are still those `merchant` was read with;
    the merchant after, or None when another change came first (read again and retry)."""
    raw = await db[COLLECTION].find_one_and_update(
        {"_id": merchant.id, "keysVersion": merchant.keys_version},
        {
            "$set": {"apiKeys": [key.to_mongo() for key in keys], "updatedAt": now},
            "$inc": {"keysVersion": 1},
        },
        return_document=ReturnDocument.AFTER,
    )
    return _merchant(raw)


async def rotate_webhook_secret(
    db: Database, merchant: Merchant, new_secret: str, previous_until: datetime, now: datetime
) -> Merchant | None:
    """Make `new_secret` current and keep the current one until `previous_until`, if the
    current one is still the one `merchant` was read with; None when another rotation came
    first."""
    raw = await db[COLLECTION].find_one_and_update(
        {"_id": merchant.id, "webhookSecret": merchant.webhook_secret},
        {
            "$set": {
                "webhookSecret": new_secret,
                "previousWebhookSecret": merchant.webhook_secret,
                "previousWebhookSecretExpiresAt": previous_until,
                "updatedAt": now,
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    return _merchant(raw)
