"""Changing a merchant: its own name and webhook URL, an admin's changes (deactivation
included), and the rotation of its webhook secret."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from payments_api.utils.clock import utcnow
from tests.fixtures.apps import LogCapture, running
from tests.fixtures.factories import (
    admin_headers,
    caller_headers,
    create_merchant,
    register_user,
)
from tests.fixtures.payments import new_key, payment_body

ME = "/api/v1/merchants/me"


def parse(instant: str) -> datetime:
    return datetime.fromisoformat(instant.replace("Z", "+00:00"))


async def test_a_merchant_renames_itself_and_changes_its_webhook_url(
    client: httpx.AsyncClient,
) -> None:
    merchant = await create_merchant(client, webhookUrl="https://old.example.com/hook")

    response = await client.patch(
        ME,
        json={"name": "New Name", "webhookUrl": "https://new.example.com/hook"},
        headers=merchant.headers,
    )

    assert response.status_code == 200, response.text
    changed = response.json()["merchant"]
    assert changed["name"] == "New Name"
    assert changed["webhookUrl"] == "https://new.example.com/hook"
    assert changed["category"] == merchant.body["merchant"]["category"]
    read = (await client.get(ME, headers=merchant.headers)).json()["merchant"]
    assert read == changed


async def test_a_null_webhook_url_stops_the_webhooks_and_a_left_out_field_stays(
    client: httpx.AsyncClient,
) -> None:
    merchant = await create_merchant(client, webhookUrl="https://hooks.example.com/p")

    response = await client.patch(ME, json={"webhookUrl": None}, headers=merchant.headers)

    changed = response.json()["merchant"]
    assert changed["webhookUrl"] is None
    assert changed["name"] == merchant.body["merchant"]["name"]


async def test_a_merchant_cannot_change_its_category_or_activate_itself(
    client: httpx.AsyncClient,
) -> None:
    merchant = await create_merchant(client)

    response = await client.patch(
        ME, json={"category": "travel", "isActive": False}, headers=merchant.headers
    )

    assert response.status_code == 200
    assert response.json()["merchant"]["category"] == merchant.body["merchant"]["category"]
    assert response.json()["merchant"]["isActive"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"webhookUrl": "not a url"}, "webhookUrl"),
        ({"webhookUrl": "ftp://hooks.example.com"}, "webhookUrl"),
        ({"webhookUrl": 5}, "webhookUrl"),
    ],
)
async def test_a_bad_change_is_422_and_changes_nothing(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    merchant = await create_merchant(client, webhookUrl="https://hooks.example.com/p")

    response = await client.patch(ME, json=body, headers=merchant.headers)

    assert response.status_code == 422
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert {d["field"] for d in response.json()["details"]} == {field}
    read = (await client.get(ME, headers=merchant.headers)).json()["merchant"]
    assert read == merchant.body["merchant"]


async def test_production_refuses_a_plain_http_or_private_webhook_url(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(app_env="production", jwt_secret="x" * 32)
    async with running(settings) as (_, http):
        merchant = await create_merchant(http, webhookUrl="https://hooks.example.com/p")
        plain = await http.patch(
            ME, json={"webhookUrl": "http://hooks.example.com/"}, headers=merchant.headers
        )
        private = await http.patch(
            ME, json={"webhookUrl": "https://127.0.0.1/hook"}, headers=merchant.headers
        )
        read = (await http.get(ME, headers=merchant.headers)).json()["merchant"]

    for response in (plain, private):
        assert response.status_code == 422
        assert response.json()["details"][0]["field"] == "webhookUrl"
    assert read["webhookUrl"] == "https://hooks.example.com/p"


async def test_a_users_token_cannot_change_a_merchant(client: httpx.AsyncClient) -> None:
    headers = await caller_headers(client, "user")

    response = await client.patch(ME, json={"name": "Mine now"}, headers=headers)

    assert response.status_code == 403


# --- an admin's changes -------------------------------------------------------------------------


async def test_an_admin_changes_any_field_of_a_merchant(client: httpx.AsyncClient) -> None:
    admin = await admin_headers(client)
    merchant = await create_merchant(client, admin)

    response = await client.patch(
        f"/api/v1/merchants/{merchant.merchant_id}",
        json={
            "name": "Renamed",
            "category": "travel",
            "webhookUrl": "https://hooks.example.com/new",
        },
        headers=admin,
    )

    assert response.status_code == 200, response.text
    changed = response.json()["merchant"]
    assert (changed["name"], changed["category"], changed["webhookUrl"]) == (
        "Renamed",
        "travel",
        "https://hooks.example.com/new",
    )
    assert changed["apiKeyPrefix"] == merchant.body["merchant"]["apiKeyPrefix"]


async def test_a_deactivated_merchant_is_refused_and_cannot_be_paid(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_headers(client)
    merchant = await create_merchant(client, admin)
    user = await register_user(client)

    response = await client.patch(
        f"/api/v1/merchants/{merchant.merchant_id}", json={"isActive": False}, headers=admin
    )

    assert response.status_code == 200
    assert response.json()["merchant"]["isActive"] is False
    refused = await client.get(ME, headers=merchant.headers)
    assert refused.status_code == 401
    history = await client.get(f"{ME}/payments", headers=merchant.headers)
    assert history.status_code == 401
    paid = await client.post(
        "/api/v1/payments",
        json=payment_body(merchant.merchant_id, 1_000),
        headers={**user.headers, "Idempotency-Key": new_key()},
    )
    assert paid.status_code == 404
    assert paid.json()["error"] == "MERCHANT_NOT_FOUND"


async def test_a_reactivated_merchant_works_again(client: httpx.AsyncClient) -> None:
    admin = await admin_headers(client)
    merchant = await create_merchant(client, admin)
    path = f"/api/v1/merchants/{merchant.merchant_id}"
    await client.patch(path, json={"isActive": False}, headers=admin)

    await client.patch(path, json={"isActive": True}, headers=admin)

    assert (await client.get(ME, headers=merchant.headers)).status_code == 200


@pytest.mark.parametrize("kind", ["user", "merchant"])
async def test_only_an_admin_changes_a_merchant(client: httpx.AsyncClient, kind: str) -> None:
    merchant = await create_merchant(client)
    headers = await caller_headers(client, kind)

    response = await client.patch(
        f"/api/v1/merchants/{merchant.merchant_id}", json={"isActive": False}, headers=headers
    )

    assert response.status_code == 403
    assert (await client.get(ME, headers=merchant.headers)).status_code == 200


async def test_an_admin_change_of_an_unknown_merchant_is_404(client: httpx.AsyncClient) -> None:
    response = await client.patch(
        "/api/v1/merchants/mch_01HZZZZZZZZZZZZZZZZZZZZZZZ",
        json={"name": "Ghost"},
        headers=await admin_headers(client),
    )

    assert response.status_code == 404
    assert response.json()["error"] == "MERCHANT_NOT_FOUND"


@pytest.mark.parametrize("body", [{"isActive": "false"}, {"isActive": 0}, {"category": ""}])
async def test_a_bad_admin_change_is_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    admin = await admin_headers(client)
    merchant = await create_merchant(client, admin)

    response = await client.patch(
        f"/api/v1/merchants/{merchant.merchant_id}", json=body, headers=admin
    )

    assert response.status_code == 422
    assert (await client.get(ME, headers=merchant.headers)).status_code == 200


# --- the webhook secret -------------------------------------------------------------------------


async def test_a_rotation_gives_a_new_secret_and_keeps_the_old_one_a_day(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    merchant = await create_merchant(client)
    before = utcnow()

    response = await client.post(f"{ME}/webhook-secret", headers=merchant.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["webhookSecret"].startswith("whsec_")
    assert body["webhookSecret"] != merchant.webhook_secret
    expires = parse(body["previousSecretExpiresAt"])
    assert before + timedelta(hours=24) - timedelta(seconds=1) <= expires
    assert expires <= utcnow() + timedelta(hours=24)
    stored = await app.state.services.merchants.get(merchant.merchant_id)
    assert stored.signing_secrets(utcnow()) == [body["webhookSecret"], merchant.webhook_secret]
    assert stored.signing_secrets(expires) == [body["webhookSecret"]]


async def test_a_second_rotation_replaces_the_secret_in_grace(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    merchant = await create_merchant(client)
    first = (await client.post(f"{ME}/webhook-secret", headers=merchant.headers)).json()

    second = (await client.post(f"{ME}/webhook-secret", headers=merchant.headers)).json()

    stored = await app.state.services.merchants.get(merchant.merchant_id)
    assert stored.signing_secrets(utcnow()) == [second["webhookSecret"], first["webhookSecret"]]


async def test_a_rotated_secret_is_shown_once_and_never_logged(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    merchant = await create_merchant(client)

    secret = (await client.post(f"{ME}/webhook-secret", headers=merchant.headers)).json()[
        "webhookSecret"
    ]

    read = await client.get(ME, headers=merchant.headers)
    assert secret not in read.text
    assert secret not in logs.text
    assert secret.removeprefix("whsec_") not in logs.text
    assert any(record.get("message") == "webhook secret rotated" for record in logs.records)
