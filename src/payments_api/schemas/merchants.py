"""Bodies of the merchant routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AnyHttpUrl, Field, StrictBool, StrictInt

from payments_api.models.api_key import ApiKey
from payments_api.models.base import UtcDatetime
from payments_api.models.merchant import Merchant
from payments_api.schemas.common import ApiDatetime, CamelModel, Envelope, text

MerchantName = Annotated[str, text(100)]
Category = Annotated[str, text(50)]


class MerchantCreate(CamelModel):
    name: MerchantName
    category: Category
    webhook_url: AnyHttpUrl | None = None


class MerchantUpdateOwn(CamelModel):
    """A merchant's own changes; fields left out stay as they are, a `null` webhookUrl stops
    the webhooks."""

    name: MerchantName | None = None
    webhook_url: AnyHttpUrl | None = None


class MerchantUpdate(MerchantUpdateOwn):
    """An admin's changes, deactivation included."""

    category: Category | None = None
    is_active: StrictBool | None = None


class MerchantPublic(CamelModel):
    """What any authenticated caller may see of a merchant."""

    merchant_id: str
    name: str
    category: str

    @classmethod
    def of(cls, merchant: Merchant) -> MerchantPublic:
        return cls(merchant_id=merchant.id, name=merchant.name, category=merchant.category)


class MerchantOut(MerchantPublic):
    """What the merchant itself and admins see. Never the key or the webhook secret."""

    webhook_url: str | None
    api_key_prefix: str | None
    is_active: bool
    created_at: UtcDatetime

    @classmethod
    def of(cls, merchant: Merchant) -> MerchantOut:
        return cls(
            merchant_id=merchant.id,
            name=merchant.name,
            category=merchant.category,
            webhook_url=merchant.webhook_url,
            api_key_prefix=merchant.api_key_prefix,
            is_active=merchant.is_active,
            created_at=merchant.created_at,
        )


class MerchantEnvelope(Envelope):
    merchant: MerchantOut


class MerchantPublicEnvelope(Envelope):
    merchant: MerchantPublic


class MerchantCreatedEnvelope(Envelope):
    merchant: MerchantOut
    api_key: str
    webhook_secret: str


class WebhookSecretEnvelope(Envelope):
    webhook_secret: str
    """Shown once."""
    previous_secret_expires_at: ApiDatetime


KeyName = Annotated[str, text(100)]
MAX_ROLL_EXPIRY_SECONDS = 7 * 24 * 3600


class ApiKeyCreate(CamelModel):
    name: KeyName | None = None


class ApiKeyRoll(CamelModel):
    expires_in_seconds: StrictInt = Field(default=86_400, ge=0, le=MAX_ROLL_EXPIRY_SECONDS)
    """How long the rolled key keeps working: 0 stops it at once."""


class ApiKeyOut(CamelModel):
    """A key as its merchant sees it: never the secret."""

    key_id: str
    name: str | None
    prefix: str
    created_at: ApiDatetime
    last_used_at: ApiDatetime | None
    expires_at: ApiDatetime | None

    @classmethod
    def of(cls, key: ApiKey, last_used_at: datetime | None = None) -> ApiKeyOut:
        return cls(
            key_id=key.key_id,
            name=key.name,
            prefix=key.prefix,
            created_at=key.created_at,
            last_used_at=last_used_at,
            expires_at=key.expires_at,
        )


class ApiKeyListEnvelope(Envelope):
    api_keys: list[ApiKeyOut]


class ApiKeyCreatedEnvelope(Envelope):
    api_key: ApiKeyOut
    secret: str
    """`sk_…`, shown once."""
