"""Merchants: onboarding by an admin, the API key shown once and stored as a hash, and reads."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from tests.fixtures.apps import LogCapture, running
from tests.fixtures.factories import (
    admin_headers,
    bearer,
    caller_headers,
    create_merchant,
    register_user,
)

UNKNOWN_MERCHANT_ID = "mch_01HZZZZZZZZZZZZZZZZZZZZZZZ"


def detail_fields(response: httpx.Response) -> set[str]:
    return {detail["field"] for detail in response.json()["details"]}


# --- onboarding -----------------------------------------------------------------------------


async def test_admin_creates_a_merchant_and_sees_its_secrets_once(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_headers(client)

    response = await client.post(
        "/api/v1/merchants",
        json={
            "name": "Seoul Coffee",
            "category": "food",
            "webhookUrl": "https://hooks.example.com/payments",
        },
        headers=admin,
    )

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    merchant = body["merchant"]
    assert merchant["merchantId"].startswith("mch_")
    assert len(merchant["merchantId"]) == len("mch_") + 26
    assert merchant["name"] == "Seoul Coffee"
    assert merchant["category"] == "food"
    assert merchant["webhookUrl"] == "https://hooks.example.com/payments"
    assert body["apiKey"].startswith("sk_")
    assert body["webhookSecret"].startswith("whsec_")
    assert "apiKeyHash" not in merchant
    assert "apiKey" not in merchant
    assert "webhookSecret" not in merchant


async def test_each_merchant_gets_its_own_secrets(client: httpx.AsyncClient) -> None:
    admin = await admin_headers(client)

    first = await create_merchant(client, admin)
    second = await create_merchant(client, admin)

    assert first.merchant_id != second.merchant_id
    assert first.api_key != second.api_key
    assert first.webhook_secret != second.webhook_secret


async def test_merchant_without_webhook_url_is_created(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)

    assert merchant.body["merchant"]["webhookUrl"] is None


async def test_stored_merchant_holds_only_the_sha256_of_the_key(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    merchant = await create_merchant(client)

    database = app.state.services.database
    stored = await database["merchants"].find_one({"_id": merchant.merchant_id})
    [record] = await database["api_keys"].find({"merchantId": merchant.merchant_id}).to_list(None)

    assert record["keyHash"] == hashlib.sha256(merchant.api_key.encode()).hexdigest()
    assert merchant.api_key not in repr(record)
    assert merchant.api_key not in repr(stored)
    assert merchant.api_key[len("sk_") :] not in repr(stored)


async def test_creating_a_merchant_logs_no_secret(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    merchant = await create_merchant(client)

    assert any(r.get("merchantId") == merchant.merchant_id for r in logs.records)
    assert merchant.api_key not in logs.text
    assert merchant.webhook_secret not in logs.text


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        pytest.param("user", "Sneaky", id="non-admin-user"),
        pytest.param("merchant", "Child", id="merchant-key"),
    ],
)
async def test_a_non_admin_cannot_create_a_merchant(
    client: httpx.AsyncClient, kind: str, name: str
) -> None:
    headers = await caller_headers(client, kind)

    response = await client.post(
        "/api/v1/merchants", json={"name": name, "category": "food"}, headers=headers
    )

    assert response.status_code == 403
    assert response.json()["error"] == "FORBIDDEN"


async def test_creating_a_merchant_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/merchants", json={"name": "Anon", "category": "food"})

    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_deactivated_admin_cannot_create_a_merchant(client: httpx.AsyncClient) -> None:
    second_admin = await register_user(client)
    admin = await admin_headers(client)
    path = f"/api/v1/users/{second_admin.user_id}"
    await client.patch(path, json={"role": "admin"}, headers=admin)
    await client.patch(path, json={"isActive": False}, headers=admin)

    response = await client.post(
        "/api/v1/merchants",
        json={"name": "Late", "category": "food"},
        headers=second_admin.headers,
    )

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"category": "food"}, "name"),
        ({"name": "No Category"}, "category"),
        ({"name": "", "category": "food"}, "name"),
        ({"name": "Bad Hook", "category": "food", "webhookUrl": "not a url"}, "webhookUrl"),
        ({"name": "Bad Hook", "category": "food", "webhookUrl": "ftp://x.example"}, "webhookUrl"),
        ({"name": 5, "category": "food"}, "name"),
    ],
)
async def test_invalid_merchant_body_is_422(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    admin = await admin_headers(client)

    response = await client.post("/api/v1/merchants", json=body, headers=admin)

    assert response.status_code == 422
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert detail_fields(response) == {field}


def _production(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(app_env="production", jwt_secret="x" * 32)


async def test_production_refuses_a_plain_http_webhook_url(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(_production(make_settings)) as (app, http):
        admin = await admin_headers(http)
        response = await http.post(
            "/api/v1/merchants",
            json={"name": "Plain", "category": "food", "webhookUrl": "http://hooks.example.com/"},
            headers=admin,
        )
        stored = await app.state.services.database["merchants"].count_documents({})

    assert response.status_code == 422
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert detail_fields(response) == {"webhookUrl"}
    assert stored == 0


async def test_production_accepts_an_https_webhook_url(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(_production(make_settings)) as (_, http):
        merchant = await create_merchant(http, webhookUrl="https://hooks.example.com/p")

    assert merchant.body["merchant"]["webhookUrl"] == "https://hooks.example.com/p"


async def test_development_accepts_a_plain_http_webhook_url(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client, webhookUrl="http://localhost:8080/hooks")

    assert merchant.body["merchant"]["webhookUrl"] == "http://localhost:8080/hooks"


# --- the merchant's own view ----------------------------------------------------------------


async def test_merchant_reads_itself_with_its_key(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client, webhookUrl="https://hooks.example.com/me")

    response = await client.get("/api/v1/merchants/me", headers=merchant.headers)

    assert response.status_code == 200
    body = response.json()
    assert body == {"success": True, "merchant": merchant.body["merchant"]}
    assert not {"apiKey", "webhookSecret", "apiKeyHash"} & set(body["merchant"])
    assert merchant.api_key not in response.text
    assert merchant.webhook_secret not in response.text


async def test_a_wrong_api_key_is_401(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)

    response = await client.get("/api/v1/merchants/me", headers=bearer(merchant.api_key + "x"))

    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_invented_api_key_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/merchants/me", headers=bearer("sk_" + "A" * 43))

    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"


async def test_the_webhook_secret_is_not_an_api_key(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)

    response = await client.get("/api/v1/merchants/me", headers=bearer(merchant.webhook_secret))

    assert response.status_code == 401


# --- the public view ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user", "merchant", "admin"])
async def test_any_caller_reads_a_merchants_public_fields(
    client: httpx.AsyncClient, kind: str
) -> None:
    target = await create_merchant(client, name="Busan Books", category="books")
    headers = await caller_headers(client, kind)

    response = await client.get(f"/api/v1/merchants/{target.merchant_id}", headers=headers)

    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "merchant": {"merchantId": target.merchant_id, "name": "Busan Books", "category": "books"},
    }


async def test_reading_an_unknown_merchant_is_404(client: httpx.AsyncClient) -> None:
    user = await register_user(client)

    response = await client.get(f"/api/v1/merchants/{UNKNOWN_MERCHANT_ID}", headers=user.headers)

    assert response.status_code == 404
    assert response.json()["error"] == "MERCHANT_NOT_FOUND"


async def test_reading_a_merchant_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    target = await create_merchant(client)

    response = await client.get(f"/api/v1/merchants/{target.merchant_id}")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
