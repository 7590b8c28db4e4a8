"""A merchant's API keys through the API: listed without secrets, made, rolled, revoked, and an
admin's recovery key; the limits (five active keys, never none) and who may do what."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.models import api_key as api_key_store
from payments_api.utils.clock import utcnow
from tests.fixtures.apps import LogCapture
from tests.fixtures.factories import (
    admin_headers,
    bearer,
    caller_headers,
    create_merchant,
)

KEYS = "/api/v1/merchants/me/api-keys"


def parse(instant: str) -> datetime:
    return datetime.fromisoformat(instant.replace("Z", "+00:00"))


async def list_keys(client: httpx.AsyncClient, secret: str) -> list[dict[str, Any]]:
    response = await client.get(KEYS, headers=bearer(secret))
    assert response.status_code == 200, response.text
    keys: list[dict[str, Any]] = response.json()["apiKeys"]
    return keys


async def new_key(client: httpx.AsyncClient, secret: str, **body: Any) -> dict[str, Any]:
    response = await client.post(KEYS, json=body, headers=bearer(secret))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def works(client: httpx.AsyncClient, secret: str) -> bool:
    response = await client.get("/api/v1/merchants/me", headers=bearer(secret))
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def test_the_first_key_is_listed_by_name_and_prefix_never_by_secret(
    client: httpx.AsyncClient,
) -> None:
    merchant = await create_merchant(client)

    response = await client.get(KEYS, headers=merchant.headers)

    [key] = response.json()["apiKeys"]
    assert key["keyId"].startswith("key_")
    assert key["name"] == "default"
    assert key["prefix"] == merchant.api_key[: len(key["prefix"])]
    assert len(key["prefix"]) < len(merchant.api_key) // 2
    assert key["expiresAt"] is None
    assert key["lastUsedAt"] is not None  # this very request used it
    assert merchant.api_key not in response.text
    assert hashlib.sha256(merchant.api_key.encode()).hexdigest() not in response.text
    assert set(key) == {"keyId", "name", "prefix", "createdAt", "lastUsedAt", "expiresAt"}


async def test_a_created_key_is_shown_once_works_and_is_listed(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)

    created = await new_key(client, merchant.api_key, name="checkout server")

    secret = created["secret"]
    assert secret.startswith("sk_")
    assert created["apiKey"]["name"] == "checkout server"
    assert created["apiKey"]["prefix"] == secret[: len(created["apiKey"]["prefix"])]
    assert await works(client, secret)
    assert await works(client, merchant.api_key)
    listed = await list_keys(client, secret)
    assert [key["name"] for key in listed] == ["default", "checkout server"]
    assert secret not in str(listed)


async def test_a_key_without_a_name_is_made_with_no_body_at_all(
    client: httpx.AsyncClient,
) -> None:
    merchant = await create_merchant(client)

    response = await client.post(KEYS, headers=merchant.headers)

    assert response.status_code == 201, response.text
    assert response.json()["apiKey"]["name"] is None


async def test_a_sixth_active_key_is_refused_and_not_stored(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    merchant = await create_merchant(client)
    for n in range(4):
        await new_key(client, merchant.api_key, name=f"k{n}")

    response = await client.post(KEYS, json={"name": "sixth"}, headers=merchant.headers)

    assert response.status_code == 409
    assert response.json()["error"] == "TOO_MANY_API_KEYS"
    assert len(await list_keys(client, merchant.api_key)) == 5
    database = app.state.services.database
    stored = await database["merchants"].find_one({"_id": merchant.merchant_id})
    assert len(stored["apiKeys"]) == 5
    assert await database["api_keys"].count_documents({"merchantId": merchant.merchant_id}) == 5


async def test_a_revoked_key_is_refused_at_once_and_the_others_keep_working(
    client: httpx.AsyncClient,
) -> None:
    merchant = await create_merchant(client)
    second = await new_key(client, merchant.api_key)

    response = await client.delete(f"{KEYS}/{second['apiKey']['keyId']}", headers=merchant.headers)

    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert not await works(client, second["secret"])
    refused = await client.get("/api/v1/merchants/me", headers=bearer(second["secret"]))
    assert refused.json()["error"] == "UNAUTHORIZED"
    assert refused.headers["www-authenticate"] == "Bearer"
    assert await works(client, merchant.api_key)
    assert [key["keyId"] for key in await list_keys(client, merchant.api_key)] != [
        second["apiKey"]["keyId"]
    ]
    assert len(await list_keys(client, merchant.api_key)) == 1


async def test_the_only_live_key_cannot_be_revoked(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)
    [key] = await list_keys(client, merchant.api_key)

    response = await client.delete(f"{KEYS}/{key['keyId']}", headers=merchant.headers)

    assert response.status_code == 409
    assert response.json()["error"] == "LAST_API_KEY"
    assert await works(client, merchant.api_key)


async def test_a_key_being_rolled_out_does_not_count_as_the_one_left(
    client: httpx.AsyncClient,
) -> None:
    merchant = await create_merchant(client)
    [old] = await list_keys(client, merchant.api_key)
    rolled = await client.post(f"{KEYS}/{old['keyId']}/roll", headers=merchant.headers)
    new = rolled.json()

    response = await client.delete(f"{KEYS}/{new['apiKey']['keyId']}", headers=merchant.headers)

    assert response.status_code == 409
    assert response.json()["error"] == "LAST_API_KEY"


async def test_another_merchants_key_is_not_found(client: httpx.AsyncClient) -> None:
    admin = await admin_headers(client)
    mine = await create_merchant(client, admin)
    theirs = await create_merchant(client, admin)
    await new_key(client, theirs.api_key)
    [their_key, _] = await list_keys(client, theirs.api_key)

    revoke = await client.delete(f"{KEYS}/{their_key['keyId']}", headers=mine.headers)
    roll = await client.post(f"{KEYS}/{their_key['keyId']}/roll", headers=mine.headers)
    unknown = await client.delete(f"{KEYS}/key_01HZZZZZZZZZZZZZZZZZZZZZZZ", headers=mine.headers)

    for response in (revoke, roll, unknown):
        assert response.status_code == 404
        assert response.json()["error"] == "API_KEY_NOT_FOUND"
    assert await works(client, theirs.api_key)
    assert len(await list_keys(client, theirs.api_key)) == 2


async def test_a_rolled_key_works_until_its_expiry_beside_the_new_one(
    client: httpx.AsyncClient,
) -> None:
    merchant = await create_merchant(client)
    [old] = await list_keys(client, merchant.api_key)
    before = utcnow()

    response = await client.post(
        f"{KEYS}/{old['keyId']}/roll", json={"expiresInSeconds": 3600}, headers=merchant.headers
    )

    assert response.status_code == 201, response.text
    new = response.json()
    assert new["apiKey"]["keyId"] != old["keyId"]
    assert new["apiKey"]["name"] == "default"
    assert await works(client, new["secret"])
    assert await works(client, merchant.api_key)
    listed = {key["keyId"]: key for key in await list_keys(client, new["secret"])}
    expires = parse(listed[old["keyId"]]["expiresAt"])
    assert before + timedelta(seconds=3599) <= expires <= utcnow() + timedelta(seconds=3600)
    assert listed[new["apiKey"]["keyId"]]["expiresAt"] is None


async def test_a_roll_by_default_keeps_the_old_key_a_day(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)
    [old] = await list_keys(client, merchant.api_key)

    new = (await client.post(f"{KEYS}/{old['keyId']}/roll", headers=merchant.headers)).json()

    listed = {key["keyId"]: key for key in await list_keys(client, new["secret"])}
    left = parse(listed[old["keyId"]]["expiresAt"]) - utcnow()
    assert timedelta(hours=23, minutes=59) < left <= timedelta(hours=24)


async def test_a_roll_with_no_grace_stops_the_old_key_at_once(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)
    [old] = await list_keys(client, merchant.api_key)

    response = await client.post(
        f"{KEYS}/{old['keyId']}/roll", json={"expiresInSeconds": 0}, headers=merchant.headers
    )

    new = response.json()
    assert not await works(client, merchant.api_key)
    assert await works(client, new["secret"])
    assert [key["keyId"] for key in await list_keys(client, new["secret"])] == [
        new["apiKey"]["keyId"]
    ]


async def test_a_rolled_key_is_refused_once_it_expires(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)
    [old] = await list_keys(client, merchant.api_key)
    await client.post(
        f"{KEYS}/{old['keyId']}/roll", json={"expiresInSeconds": 1}, headers=merchant.headers
    )
    assert await works(client, merchant.api_key)

    for _ in range(40):  # at most 4 s
        if not await works(client, merchant.api_key):
            break
        await asyncio.sleep(0.1)

    assert not await works(client, merchant.api_key)


@pytest.mark.parametrize(
    "body",
    [
        {"expiresInSeconds": -1},
        {"expiresInSeconds": 604_801},
        {"expiresInSeconds": 1.5},
        {"expiresInSeconds": "60"},
        {"expiresInSeconds": True},
    ],
)
async def test_a_bad_roll_expiry_is_422_and_rolls_nothing(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    merchant = await create_merchant(client)
    [old] = await list_keys(client, merchant.api_key)

    response = await client.post(f"{KEYS}/{old['keyId']}/roll", json=body, headers=merchant.headers)

    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "expiresInSeconds"
    [still] = await list_keys(client, merchant.api_key)
    assert (still["keyId"], still["expiresAt"]) == (old["keyId"], None)


@pytest.mark.parametrize("name", ["", " ", "x" * 101, 5])
async def test_a_bad_key_name_is_422_and_makes_no_key(client: httpx.AsyncClient, name: Any) -> None:
    merchant = await create_merchant(client)

    response = await client.post(KEYS, json={"name": name}, headers=merchant.headers)

    assert response.status_code == 422
    assert response.json()["details"][0]["field"] == "name"
    assert len(await list_keys(client, merchant.api_key)) == 1


async def test_an_admin_issues_a_recovery_key_that_works(client: httpx.AsyncClient) -> None:
    admin = await admin_headers(client)
    merchant = await create_merchant(client, admin)

    response = await client.post(
        f"/api/v1/merchants/{merchant.merchant_id}/api-keys",
        json={"name": "recovery"},
        headers=admin,
    )

    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    me = await client.get("/api/v1/merchants/me", headers=bearer(secret))
    assert me.json()["merchant"]["merchantId"] == merchant.merchant_id
    assert "recovery" in [key["name"] for key in await list_keys(client, secret)]


@pytest.mark.parametrize("kind", ["user", "merchant"])
async def test_only_an_admin_issues_a_recovery_key(client: httpx.AsyncClient, kind: str) -> None:
    merchant = await create_merchant(client)
    headers = await caller_headers(client, kind)

    response = await client.post(
        f"/api/v1/merchants/{merchant.merchant_id}/api-keys", headers=headers
    )

    assert response.status_code == 403
    assert len(await list_keys(client, merchant.api_key)) == 1


async def test_a_recovery_key_for_an_unknown_merchant_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/merchants/mch_01HZZZZZZZZZZZZZZZZZZZZZZZ/api-keys",
        headers=await admin_headers(client),
    )

    assert response.status_code == 404
    assert response.json()["error"] == "MERCHANT_NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", KEYS),
        ("POST", KEYS),
        ("POST", f"{KEYS}/key_1/roll"),
        ("DELETE", f"{KEYS}/key_1"),
    ],
)
async def test_a_users_token_cannot_manage_keys(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    headers = await caller_headers(client, "user")

    response = await client.request(method, path, headers=headers)

    assert response.status_code == 403


async def test_no_key_secret_reaches_the_logs(client: httpx.AsyncClient, logs: LogCapture) -> None:
    merchant = await create_merchant(client)
    created = await new_key(client, merchant.api_key)
    [_, second] = await list_keys(client, merchant.api_key)
    rolled = (await client.post(f"{KEYS}/{second['keyId']}/roll", headers=merchant.headers)).json()

    for secret in (merchant.api_key, created["secret"], rolled["secret"]):
        assert secret not in logs.text
        assert secret.removeprefix("sk_") not in logs.text
    assert any(record.get("message") == "api key rolled" for record in logs.records)


async def test_last_used_is_written_once_a_minute_not_per_request(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    merchant = await create_merchant(client)
    writes: list[str] = []
    original = api_key_store.touch

    async def counted(db: Any, key_id: str, now: datetime, not_since: datetime) -> bool:
        writes.append(key_id)
        return await original(db, key_id, now, not_since)

    monkeypatch.setattr(api_key_store, "touch", counted)
    for _ in range(5):
        assert await works(client, merchant.api_key)

    assert len(writes) == 1
    assert (await list_keys(client, merchant.api_key))[0]["lastUsedAt"] is not None
