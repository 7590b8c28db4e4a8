"""A merchant's API keys: the secret only in the answer that made the key."""

from __future__ import annotations

from payments_api.schemas.common import Envelope
from payments_api.schemas.merchants import ApiKeyCreatedEnvelope, ApiKeyListEnvelope, ApiKeyOut
from payments_api.services.merchants import IssuedKey
from payments_api.services.registry import Services


def _created(issued: IssuedKey) -> ApiKeyCreatedEnvelope:
    return ApiKeyCreatedEnvelope(api_key=ApiKeyOut.of(issued.key), secret=issued.secret)


async def list_keys(services: Services, merchant_id: str) -> ApiKeyListEnvelope:
    keys = await services.api_keys.list_live(merchant_id)
    return ApiKeyListEnvelope(api_keys=[ApiKeyOut.of(key, used) for key, used in keys])


async def create(
    services: Services, merchant_id: str, name: str | None, actor: str
) -> ApiKeyCreatedEnvelope:
    return _created(await services.api_keys.create(merchant_id, name, actor=actor))


async def roll(
    services: Services, merchant_id: str, key_id: str, expires_in_seconds: int
) -> ApiKeyCreatedEnvelope:
    return _created(await services.api_keys.roll(merchant_id, key_id, expires_in_seconds))


async def revoke(services: Services, merchant_id: str, key_id: str) -> Envelope:
    await services.api_keys.revoke(merchant_id, key_id)
    return Envelope()
