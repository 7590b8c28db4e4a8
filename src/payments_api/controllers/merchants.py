"""Merchants: onboarding answers with the secrets once; reads never show them."""

from __future__ import annotations

from typing import Any

from payments_api.models.merchant import Merchant
from payments_api.models.user import User
from payments_api.schemas.merchants import (
    MerchantCreate,
    MerchantCreatedEnvelope,
    MerchantEnvelope,
    MerchantOut,
    MerchantPublic,
    MerchantPublicEnvelope,
    MerchantUpdateOwn,
    WebhookSecretEnvelope,
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


async def update(
    services: Services, merchant_id: str, body: MerchantUpdateOwn, actor: str
) -> MerchantEnvelope:
    """A merchant's or an admin's change: the fields sent, where only `webhookUrl` may be
    `null` (no more webhooks); a `null` anywhere else changes nothing."""
    changes: dict[str, Any] = {
        field: value
        for field, value in body.model_dump(exclude_unset=True).items()
        if value is not None or field == "webhook_url"
    }
    if changes.get("webhook_url") is not None:
        changes["webhook_url"] = str(body.webhook_url)
    merchant = await services.merchants.update(merchant_id, changes, actor=actor)
    return MerchantEnvelope(merchant=MerchantOut.of(merchant))


async def rotate_webhook_secret(services: Services, merchant_id: str) -> WebhookSecretEnvelope:
    rotated = await services.merchants.rotate_webhook_secret(merchant_id)
    return WebhookSecretEnvelope(
        webhook_secret=rotated.webhook_secret,
        previous_secret_expires_at=rotated.previous_secret_expires_at,
    )
