"""Bodies of the merchant routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import AnyHttpUrl

from payments_api.models.base import UtcDatetime
from payments_api.models.merchant import Merchant
from payments_api.schemas.common import CamelModel, Envelope, text

MerchantName = Annotated[str, text(100)]
Category = Annotated[str, text(50)]


class MerchantCreate(CamelModel):
    name: MerchantName
    category: Category
    webhook_url: AnyHttpUrl | None = None


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
    api_key_prefix: str
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
