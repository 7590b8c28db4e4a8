"""API key bookkeeping below the API: when a key was last used (at most one write a minute,
whichever process asks) and merchants stored by v1.0 keeping their key."""

from __future__ import annotations

from datetime import timedelta

from payments_api.models import api_key as api_key_store
from payments_api.models import merchant as merchant_store
from payments_api.models.merchant import Merchant
from payments_api.services.registry import Services
from payments_api.utils.clock import utcnow
from payments_api.utils.crypto import random_secret, sha256_hex

MINUTE = timedelta(minutes=1)


async def test_a_keys_use_is_written_once_a_minute_whoever_asks(
    services: Services, merchant: Merchant
) -> None:
    db = services.database
    [key] = merchant.api_keys
    await api_key_store.insert_record(
        db, api_key_store.KeyRecord(id=key.key_id, key_hash="h", merchant_id=merchant.id)
    )
    first = utcnow()

    assert await api_key_store.touch(db, key.key_id, first, not_since=first - MINUTE)
    later = first + timedelta(seconds=30)
    assert not await api_key_store.touch(db, key.key_id, later, not_since=later - MINUTE)
    assert (await api_key_store.last_used(db, [key.key_id]))[key.key_id] == first
    past_a_minute = first + timedelta(seconds=61)
    assert await api_key_store.touch(
        db, key.key_id, past_a_minute, not_since=past_a_minute - MINUTE
    )
    assert (await api_key_store.last_used(db, [key.key_id]))[key.key_id] == past_a_minute


async def test_a_merchant_stored_by_v1_0_keeps_its_key(services: Services) -> None:
    db = services.database
    secret = random_secret("sk")
    now = utcnow()
    await db["merchants"].insert_one(
        {
            "_id": "mch_01LEGACY0000000000000000000",
            "name": "Old Shop",
            "category": "food",
            "webhookSecret": random_secret("whsec"),
            "apiKeyHash": sha256_hex(secret),
            "apiKeyPrefix": secret[:10],
            "isActive": True,
            "createdAt": now,
            "updatedAt": now,
        }
    )

    assert await merchant_store.adopt_legacy_keys(db) == 1
    assert await merchant_store.adopt_legacy_keys(db) == 0

    principal = await services.auth.resolve(f"Bearer {secret}")
    assert (principal.kind, principal.id) == ("merchant", "mch_01LEGACY0000000000000000000")
    adopted = await services.merchants.get(principal.id)
    assert adopted.api_key_prefix == secret[:10]
    stored = await db["merchants"].find_one({"_id": principal.id})
    assert "apiKeyHash" not in stored
