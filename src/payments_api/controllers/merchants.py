"""Merchants: onboarding answers with the secrets once; reads never show them."""

from __future__ import annotations

from payments_api.models.merchant import Merchant
from payments_api.models.user import User
from payments_api.schemas.merchants import (
    MerchantCreate,
    MerchantCreatedEnvelope,
    MerchantEnvelope,
    MerchantOut,
    MerchantPublic,
    MerchantPublicEnvelope,
)
from payments_api.services.registry import Services


async def create(services: Services, body: MerchantCreate, admin: User) -> MerchantCreatedEnvelope:
    created = await services.merchants.create(
        name=body.name,
        category=body.category,
        webhook_url=str(body.webhook_url) if body.webhook_url else None,
        admin_id=admin.id,
    )
    return MerchantCreatedEnvelope(
        merchant=MerchantOut.of(created.merchant),
        api_key=created.api_key,
        webhook_secret=created.webhook_secret,
    )


def me(merchant: Merchant) -> MerchantEnvelope:
    return MerchantEnvelope(merchant=MerchantOut.of(merchant))


async def public(services: Services, merchant_id: str) -> MerchantPublicEnvelope:
    merchant = await services.merchants.get(merchant_id)
    return MerchantPublicEnvelope(merchant=MerchantPublic.of(merchant))
