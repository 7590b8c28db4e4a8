"""Merchant onboarding, lookups and changes; the rotation of a merchant's webhook secret.

Secrets (the first API key, a webhook secret) are shown once, in the answer that made them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from payments_api.config.constants import API_KEY_PREFIX, WEBHOOK_SECRET_PREFIX
from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.errors import (
    ConcurrentUpdate,
    NotFoundError,
    UnauthorizedError,
    ValidationFailed,
)
from payments_api.models import api_key as api_key_store
from payments_api.models import merchant as merchant_store
from payments_api.models.api_key import ApiKey, KeyRecord
from payments_api.models.merchant import Merchant
from payments_api.services.credentials import Credentials
from payments_api.services.webhooks import unsafe_reason
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from payments_api.utils.crypto import random_secret, sha256_hex
from payments_api.utils.logger import log_business_event

KEY_DISPLAY_PREFIX_LENGTH = 10
FIRST_KEY_NAME = "default"
SECRET_GRACE = timedelta(hours=24)
"""How long a rotated webhook secret still signs deliveries beside the new one."""
ROTATION_ATTEMPTS = 5

_STORED_NAMES = {
    "name": "name",
    "category": "category",
    "webhook_url": "webhookUrl",
    "is_active": "isActive",
}


class MerchantNotFound(NotFoundError):
    code = "MERCHANT_NOT_FOUND"
    message = "Merchant not found"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: ApiKey
    record: KeyRecord
    secret: str
    """`sk_…`, shown once, in the answer that made the key."""


def issue_key(merchant_id: str, name: str | None, now: datetime) -> IssuedKey:
    secret = random_secret(API_KEY_PREFIX)
    key = ApiKey(
        key_id=ids.api_key_id(),
        name=name,
        prefix=secret[:KEY_DISPLAY_PREFIX_LENGTH],
        created_at=now,
    )
    record = KeyRecord(id=key.key_id, key_hash=sha256_hex(secret), merchant_id=merchant_id)
    return IssuedKey(key, record, secret)


@dataclass(frozen=True, slots=True)
class CreatedMerchant:
    merchant: Merchant
    api_key: str
    webhook_secret: str


@dataclass(frozen=True, slots=True)
class RotatedSecret:
    webhook_secret: str
    previous_secret_expires_at: datetime


class MerchantService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        credentials: Credentials,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.db = db
        self.credentials = credentials
        self.clock = clock

    async def create(
        self, *, name: str, category: str, webhook_url: str | None, admin_id: str
    ) -> CreatedMerchant:
        if webhook_url:
            await self._check_webhook_url(webhook_url)
        now = self.clock()
        merchant_id = ids.merchant_id()
        first_key = issue_key(merchant_id, FIRST_KEY_NAME, now)
        webhook_secret = random_secret(WEBHOOK_SECRET_PREFIX)
        merchant = Merchant(
            id=merchant_id,
            name=name,
            category=category,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            api_keys=[first_key.key],
            created_at=now,
            updated_at=now,
        )
        await api_key_store.insert_record(self.db, first_key.record)
        try:
            await merchant_store.insert(self.db, merchant)
        except BaseException:
            await api_key_store.delete_records(self.db, [first_key.key.key_id])
            raise
        log_business_event("merchant created", merchantId=merchant.id, adminId=admin_id)
        return CreatedMerchant(merchant, first_key.secret, webhook_secret)

    async def get(self, merchant_id: str) -> Merchant:
        merchant = await merchant_store.find_by_id(self.db, merchant_id)
        if merchant is None:
            raise MerchantNotFound()
        return merchant

    async def get_authenticated(self, merchant_id: str) -> Merchant:
        """The merchant behind a valid key; one deactivated or gone meanwhile is no credential."""
        merchant = await merchant_store.find_by_id(self.db, merchant_id)
        if merchant is None or not merchant.is_active:
            raise UnauthorizedError(message="Invalid API key")
        return merchant

    async def update(self, merchant_id: str, changes: dict[str, Any], actor: str) -> Merchant:
        """Set `changes` (name, category, webhook_url, is_active; a None webhook_url stops the
        webhooks). A deactivation is refused by every process within the credential trust time
        (services/credentials.py), by this one at once."""
        if changes.get("webhook_url"):
            await self._check_webhook_url(changes["webhook_url"])
        stored = {_STORED_NAMES[field]: value for field, value in changes.items()}
        updated = await merchant_store.update(
            self.db, merchant_id, {**stored, "updatedAt": self.clock()}
        )
        if updated is None:
            raise MerchantNotFound()
        self.credentials.forget_merchant(merchant_id)
        log_business_event(
            "merchant updated", merchantId=merchant_id, actor=actor, changes=sorted(changes)
        )
        return updated

    async def rotate_webhook_secret(self, merchant_id: str) -> RotatedSecret:
        """A new webhook secret; the one it replaces signs deliveries beside it for 24 h (a
        secret still in its grace from an earlier rotation stops now)."""
        new_secret = random_secret(WEBHOOK_SECRET_PREFIX)
        for _ in range(ROTATION_ATTEMPTS):
            merchant = await self.get(merchant_id)
            now = self.clock()
            until = now + SECRET_GRACE
            if await merchant_store.rotate_webhook_secret(
                self.db, merchant, new_secret, until, now
            ):
                log_business_event("webhook secret rotated", merchantId=merchant_id)
                return RotatedSecret(new_secret, until)
        raise ConcurrentUpdate()

    async def _check_webhook_url(self, url: str) -> None:
        reason = await unsafe_reason(
            url, production=self.settings.is_production, must_resolve=False
        )
        if reason:
            raise ValidationFailed.of_field("webhookUrl", reason)
