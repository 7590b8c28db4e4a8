"""Merchant onboarding and lookups. The API key and webhook secret are shown once, at creation."""

from __future__ import annotations

from dataclasses import dataclass

from payments_api.config.constants import API_KEY_PREFIX, WEBHOOK_SECRET_PREFIX
from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.errors import NotFoundError, ValidationFailed
from payments_api.models import merchant as merchant_store
from payments_api.models.merchant import Merchant
from payments_api.services.webhooks import unsafe_reason
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from payments_api.utils.crypto import random_secret, sha256_hex
from payments_api.utils.logger import log_business_event

API_KEY_DISPLAY_PREFIX = 10


class MerchantNotFound(NotFoundError):
    code = "MERCHANT_NOT_FOUND"
    message = "Merchant not found"


@dataclass(frozen=True, slots=True)
class CreatedMerchant:
    merchant: Merchant
    api_key: str
    webhook_secret: str


class MerchantService:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    async def create(
        self, *, name: str, category: str, webhook_url: str | None, admin_id: str
    ) -> CreatedMerchant:
        if webhook_url:
            reason = await unsafe_reason(
                webhook_url, production=self.settings.is_production, must_resolve=False
            )
            if reason:
                raise ValidationFailed.of_field("webhookUrl", reason)
        api_key = random_secret(API_KEY_PREFIX)
        webhook_secret = random_secret(WEBHOOK_SECRET_PREFIX)
        now = utcnow()
        merchant = Merchant(
            id=ids.merchant_id(),
            name=name,
            category=category,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            api_key_hash=sha256_hex(api_key),
            api_key_prefix=api_key[:API_KEY_DISPLAY_PREFIX],
            created_at=now,
            updated_at=now,
        )
        await merchant_store.insert(self.db, merchant)
        log_business_event("merchant created", merchantId=merchant.id, adminId=admin_id)
        return CreatedMerchant(merchant, api_key, webhook_secret)

    async def get(self, merchant_id: str) -> Merchant:
        merchant = await merchant_store.find_by_id(self.db, merchant_id)
        if merchant is None:
            raise MerchantNotFound()
        return merchant
