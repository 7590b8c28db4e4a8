"""Users: registration, the profile, admin changes and the bootstrap admin."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from mongomock_motor import AsyncMongoMockClient

from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.models import user as user_model
from payments_api.services.users import UserService
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.fixtures.apps import running
from tests.fixtures.factories import (
    DEFAULT_PASSWORD,
    admin_headers,
    bearer,
    caller_headers,
    register_user,
    token_for,
)
from tests.fixtures.races import DuplicateKeyWithoutIndexName, meet_at, nx_gap

USER_FIELDS = {
    "userId",
    "email",
    "name",
    "phoneNumber",
    "role",
    "dailyLimit",
    "isActive",
    "createdAt",
}


def new_user_body(email: str, **fields: Any) -> dict[str, Any]:
    return {"email": email, "password": DEFAULT_PASSWORD, "name": "Kim Minji", **fields}


def with_settings(service: UserService, settings: Settings) -> UserService:
    """The app's own user service, as if it had been started with other settings."""
    other = copy.copy(service)
    other.settings = settings
    return other


def detail_fields(response: httpx.Response) -> set[str]:
    return {detail["field"] for detail in response.json()["details"]}


# --- registration ---------------------------------------------------------------------------


async def test_register_answers_201_with_the_user(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/users",
        json=new_user_body("Minji.Kim@Example.COM", phoneNumber="+82 10-1234-5678"),
    )

    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    user = body["user"]
    assert set(user) == USER_FIELDS
    assert user["userId"].startswith("usr_")
    assert len(user["userId"]) == len("usr_") + 26
    assert user["email"] == "minji.kim@example.com"
    assert user["name"] == "Kim Minji"
    assert user["phoneNumber"] == "+82 10-1234-5678"  # as the user wrote it
    assert user["role"] == "user"
    assert user["dailyLimit"] == 2_000_000
    assert user["isActive"] is True


async def test_text_is_kept_as_written_not_trimmed(client: httpx.AsyncClient) -> None:
    """What the OpenAPI description allows is exactly what is checked: a trimmed value would
    pass checks its raw form fails (and a fuzzer sees the difference)."""
    response = await client.post(
        "/api/v1/users", json=new_user_body("kept@example.com", name=" Kim ")
    )

    assert response.status_code == 201, response.text
    assert response.json()["user"]["name"] == " Kim "


async def test_register_created_at_is_utc_iso_with_z(client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    response = await client.post("/api/v1/users", json=new_user_body("created@example.com"))
    after = datetime.now(UTC)

    created_at = response.json()["user"]["createdAt"]
    assert created_at.endswith("Z")
    parsed = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert before <= parsed <= after


async def test_register_never_returns_the_password_or_its_hash(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/users", json=new_user_body("secretive@example.com"))

    assert response.status_code == 201
    text = response.text
    assert "password" not in text.lower()
    assert DEFAULT_PASSWORD not in text
    assert "$argon2" not in text


async def test_register_stores_an_argon2id_hash_not_the_password(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    response = await client.post("/api/v1/users", json=new_user_body("hashed@example.com"))
    assert response.status_code == 201, response.text
    user_id = response.json()["user"]["userId"]

    stored = await app.state.services.database["users"].find_one({"_id": user_id})
    assert stored["passwordHash"].startswith("$argon2id$")
    assert DEFAULT_PASSWORD not in str(stored)
    assert "passwordHash" not in response.text  # never in an answer either


async def test_new_user_daily_limit_follows_the_setting(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(default_daily_limit=750_000)) as (_, http):
        response = await http.post("/api/v1/users", json=new_user_body("limit@example.com"))

    assert response.status_code == 201
    assert response.json()["user"]["dailyLimit"] == 750_000


async def test_register_same_email_again_is_409(client: httpx.AsyncClient) -> None:
    first = await client.post("/api/v1/users", json=new_user_body("twice@example.com"))
    second = await client.post("/api/v1/users", json=new_user_body("twice@example.com"))

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["error"] == "EMAIL_ALREADY_REGISTERED"


async def test_register_email_differing_only_in_case_is_409(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/users", json=new_user_body("casey@example.com"))
    response = await client.post("/api/v1/users", json=new_user_body("CASEY@Example.com"))

    assert response.status_code == 409
    assert response.json()["error"] == "EMAIL_ALREADY_REGISTERED"


async def test_register_same_phone_again_is_409(client: httpx.AsyncClient) -> None:
    await client.post(
        "/api/v1/users", json=new_user_body("phone1@example.com", phoneNumber="010-1234-5678")
    )
    response = await client.post(
        "/api/v1/users", json=new_user_body("phone2@example.com", phoneNumber="01012345678")
    )

    assert response.status_code == 409
    assert response.json()["error"] == "PHONE_ALREADY_REGISTERED"


@pytest.mark.race
async def test_concurrent_registrations_of_one_email_report_the_email(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The address contains "phone": the conflict must still be named by the field that clashed.
    bodies = [new_user_body("phone.owner@example.com", name=f"Racer {n}") for n in range(2)]
    meet_at(user_model, "insert", 2, monkeypatch)  # both pass the checks: the index decides

    responses = await asyncio.gather(*(client.post("/api/v1/users", json=b) for b in bodies))

    assert sorted(r.status_code for r in responses) == [201, 409]
    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.json()["error"] == "EMAIL_ALREADY_REGISTERED"


@pytest.mark.race
@nx_gap(DuplicateKeyWithoutIndexName)
async def test_concurrent_registrations_of_one_phone_report_the_phone(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = [new_user_body(f"racer{n}@example.com", phoneNumber="010-9999-0000") for n in range(2)]
    meet_at(user_model, "insert", 2, monkeypatch)  # both pass the checks: the index decides

    responses = await asyncio.gather(*(client.post("/api/v1/users", json=b) for b in bodies))

    assert sorted(r.status_code for r in responses) == [201, 409]
    conflict = next(r for r in responses if r.status_code == 409)
    assert conflict.json()["error"] == "PHONE_ALREADY_REGISTERED"


async def test_users_without_phone_numbers_do_not_collide(client: httpx.AsyncClient) -> None:
    first = await client.post("/api/v1/users", json=new_user_body("nophone1@example.com"))
    second = await client.post("/api/v1/users", json=new_user_body("nophone2@example.com"))

    assert first.status_code == 201
    assert second.status_code == 201
    assert first.json()["user"]["phoneNumber"] is None
    assert second.json()["user"]["phoneNumber"] is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"password": "x" * 7}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"password": True}, "password"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "missing-at.example.com"}, "email"),
        ({"name": 123}, "name"),
        ({"name": "   "}, "name"),
        ({"phoneNumber": "call me"}, "phoneNumber"),
        ({"phoneNumber": " 010-1234-5678"}, "phoneNumber"),  # as the pattern says
    ],
)
async def test_register_rejects_invalid_fields_with_422(
    client: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/v1/users", json=new_user_body("valid@example.com") | changes)

    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    assert detail_fields(response) == {field}
    assert body["requestId"]


@pytest.mark.parametrize("missing", ["email", "password", "name"])
async def test_register_without_a_required_field_is_422(
    client: httpx.AsyncClient, missing: str
) -> None:
    body = new_user_body("complete@example.com")
    del body[missing]

    response = await client.post("/api/v1/users", json=body)

    assert response.status_code == 422
    assert detail_fields(response) == {missing}


@pytest.mark.parametrize("length", [8, 128])
async def test_register_accepts_passwords_at_the_length_bounds(
    client: httpx.AsyncClient, length: int
) -> None:
    email = f"bound{length}@example.com"
    password = "p" * length

    response = await client.post(
        "/api/v1/users", json=new_user_body(email) | {"password": password}
    )

    assert response.status_code == 201
    assert await token_for(client, email, password)


async def test_rejected_registration_stores_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    rejected = await client.post(
        "/api/v1/users", json=new_user_body("retry@example.com", password="short")
    )

    assert rejected.status_code == 422, rejected.text
    assert rejected.json()["error"] == "VALIDATION_ERROR"
    assert detail_fields(rejected) == {"password"}
    users = app.state.services.database["users"]
    assert await users.count_documents({"email": "retry@example.com"}) == 0

    response = await client.post("/api/v1/users", json=new_user_body("retry@example.com"))

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True
    assert set(body["user"]) == USER_FIELDS
    assert body["user"]["email"] == "retry@example.com"
    assert await users.count_documents({"email": "retry@example.com"}) == 1
    assert await token_for(client, "retry@example.com", DEFAULT_PASSWORD)


# --- the profile ----------------------------------------------------------------------------


async def test_me_returns_the_callers_profile(client: httpx.AsyncClient) -> None:
    registered = await client.post(
        "/api/v1/users", json=new_user_body("me@example.com", phoneNumber="010-5555-1212")
    )
    token = await token_for(client, "me@example.com", DEFAULT_PASSWORD)

    response = await client.get("/api/v1/users/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"success": True, "user": registered.json()["user"]}


async def test_me_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/me")

    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"


# --- admin changes --------------------------------------------------------------------------


async def test_admin_changes_daily_limit_active_flag_and_role(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    admin = await admin_headers(client)

    response = await client.patch(
        f"/api/v1/users/{user.user_id}",
        json={"dailyLimit": 5000, "isActive": False, "role": "admin"},
        headers=admin,
    )

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert set(body["user"]) == USER_FIELDS
    assert body["user"]["userId"] == user.user_id
    assert body["user"]["dailyLimit"] == 5000
    assert body["user"]["isActive"] is False
    assert body["user"]["role"] == "admin"


async def test_admin_change_is_persisted(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    admin = await admin_headers(client)

    await client.patch(f"/api/v1/users/{user.user_id}", json={"dailyLimit": 1234}, headers=admin)
    me = await client.get("/api/v1/users/me", headers=user.headers)

    assert me.json()["user"]["dailyLimit"] == 1234


async def test_admin_change_leaves_unmentioned_fields_alone(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    admin = await admin_headers(client)
    before = (await client.get("/api/v1/users/me", headers=user.headers)).json()["user"]

    response = await client.patch(
        f"/api/v1/users/{user.user_id}", json={"isActive": False}, headers=admin
    )

    after = response.json()["user"]
    assert after == before | {"isActive": False}


async def test_a_promoted_user_can_act_as_admin(client: httpx.AsyncClient) -> None:
    promoted = await register_user(client)
    other = await register_user(client)
    admin = await admin_headers(client)
    await client.patch(f"/api/v1/users/{promoted.user_id}", json={"role": "admin"}, headers=admin)

    response = await client.patch(
        f"/api/v1/users/{other.user_id}", json={"dailyLimit": 10}, headers=promoted.headers
    )

    assert response.status_code == 200


async def test_a_demoted_admin_loses_admin_rights(client: httpx.AsyncClient) -> None:
    demoted = await register_user(client)
    other = await register_user(client)
    admin = await admin_headers(client)
    await client.patch(f"/api/v1/users/{demoted.user_id}", json={"role": "admin"}, headers=admin)
    await client.patch(f"/api/v1/users/{demoted.user_id}", json={"role": "user"}, headers=admin)

    response = await client.patch(
        f"/api/v1/users/{other.user_id}", json={"dailyLimit": 10}, headers=demoted.headers
    )

    assert response.status_code == 403


@pytest.mark.parametrize(
    "kind", [pytest.param("user", id="non-admin-user"), pytest.param("merchant", id="merchant")]
)
async def test_patch_by_a_non_admin_is_403(client: httpx.AsyncClient, kind: str) -> None:
    headers = await caller_headers(client, kind)
    target = await register_user(client)

    response = await client.patch(
        f"/api/v1/users/{target.user_id}", json={"dailyLimit": 1}, headers=headers
    )

    assert response.status_code == 403
    assert response.json()["error"] == "FORBIDDEN"


async def test_a_user_cannot_raise_their_own_limit(client: httpx.AsyncClient) -> None:
    user = await register_user(client)

    response = await client.patch(
        f"/api/v1/users/{user.user_id}",
        json={"dailyLimit": 9_999_999, "role": "admin"},
        headers=user.headers,
    )
    me = await client.get("/api/v1/users/me", headers=user.headers)

    assert response.status_code == 403
    assert me.json()["user"]["dailyLimit"] == 2_000_000
    assert me.json()["user"]["role"] == "user"


async def test_patch_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    target = await register_user(client)

    response = await client.patch(f"/api/v1/users/{target.user_id}", json={"dailyLimit": 1})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_patch_of_an_unknown_user_is_404(client: httpx.AsyncClient) -> None:
    admin = await admin_headers(client)

    response = await client.patch(
        "/api/v1/users/usr_01HZZZZZZZZZZZZZZZZZZZZZZZ", json={"dailyLimit": 1}, headers=admin
    )

    assert response.status_code == 404
    assert response.json()["error"] == "USER_NOT_FOUND"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"dailyLimit": "5000"}, "dailyLimit"),
        ({"dailyLimit": 1.5}, "dailyLimit"),
        ({"dailyLimit": -1}, "dailyLimit"),
        ({"dailyLimit": True}, "dailyLimit"),
        # Above the contract's 10^15, and past MongoDB's 8-byte integers (once a 500).
        ({"dailyLimit": 10**15 + 1}, "dailyLimit"),
        ({"dailyLimit": 2**63}, "dailyLimit"),
        ({"dailyLimit": 10**30}, "dailyLimit"),
        ({"isActive": "false"}, "isActive"),
        ({"isActive": 0}, "isActive"),
        ({"role": "superuser"}, "role"),
    ],
)
async def test_patch_with_a_bad_value_is_422_and_changes_nothing(
    client: httpx.AsyncClient, changes: dict[str, Any], field: str
) -> None:
    user = await register_user(client)
    admin = await admin_headers(client)

    response = await client.patch(f"/api/v1/users/{user.user_id}", json=changes, headers=admin)
    me = await client.get("/api/v1/users/me", headers=user.headers)

    assert response.status_code == 422
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert detail_fields(response) == {field}
    assert me.json()["user"]["dailyLimit"] == 2_000_000
    assert me.json()["user"]["isActive"] is True
    assert me.json()["user"]["role"] == "user"


async def test_daily_limit_of_zero_is_accepted(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    admin = await admin_headers(client)

    response = await client.patch(
        f"/api/v1/users/{user.user_id}", json={"dailyLimit": 0}, headers=admin
    )

    assert response.status_code == 200
    assert response.json()["user"]["dailyLimit"] == 0


async def test_daily_limit_of_ten_to_the_fifteen_is_accepted(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    admin = await admin_headers(client)

    response = await client.patch(
        f"/api/v1/users/{user.user_id}", json={"dailyLimit": 10**15}, headers=admin
    )

    assert response.status_code == 200, response.text
    assert response.json()["user"]["dailyLimit"] == 10**15


async def test_deactivated_user_cannot_log_in(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    admin = await admin_headers(client)
    await client.patch(f"/api/v1/users/{user.user_id}", json={"isActive": False}, headers=admin)

    response = await client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": user.password}
    )

    assert response.status_code == 403
    assert response.json()["error"] == "USER_INACTIVE"


async def test_a_token_issued_before_deactivation_no_longer_reads_the_profile(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    admin = await admin_headers(client)
    await client.patch(f"/api/v1/users/{user.user_id}", json={"isActive": False}, headers=admin)

    response = await client.get("/api/v1/users/me", headers=user.headers)

    assert response.status_code == 403
    assert response.json()["error"] == "USER_INACTIVE"


async def test_deactivated_user_with_a_wrong_password_gets_invalid_credentials(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    admin = await admin_headers(client)
    await client.patch(f"/api/v1/users/{user.user_id}", json={"isActive": False}, headers=admin)

    response = await client.post(
        "/api/v1/auth/token", json={"email": user.email, "password": "not-the-password"}
    )

    assert response.status_code == 401
    assert response.json()["error"] == "INVALID_CREDENTIALS"


async def test_reactivated_user_can_log_in_again(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    admin = await admin_headers(client)
    path = f"/api/v1/users/{user.user_id}"
    await client.patch(path, json={"isActive": False}, headers=admin)
    await client.patch(path, json={"isActive": True}, headers=admin)

    assert await token_for(client, user.email, user.password)


# --- the bootstrap admin --------------------------------------------------------------------


async def test_bootstrap_admin_exists_at_start_up(client: httpx.AsyncClient) -> None:
    token = await token_for(client, ADMIN_EMAIL, ADMIN_PASSWORD)

    response = await client.get("/api/v1/users/me", headers=bearer(token))

    user = response.json()["user"]
    assert user["email"] == ADMIN_EMAIL
    assert user["role"] == "admin"
    assert user["isActive"] is True


async def test_bootstrap_admin_email_is_stored_lowercased(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(bootstrap_admin_email="Root@Example.COM")
    async with running(settings) as (_, http):
        token = await token_for(http, "root@example.com", ADMIN_PASSWORD)
        response = await http.get("/api/v1/users/me", headers=bearer(token))

    assert response.json()["user"]["email"] == "root@example.com"
    assert response.json()["user"]["role"] == "admin"


async def test_bootstrap_admin_is_not_changed_by_a_restart_with_another_password(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both app instances get the same in-memory MongoDB, as two runs on one real server would.
    shared = AsyncMongoMockClient(tz_aware=True)
    monkeypatch.setattr(Database, "_make_client", staticmethod(lambda _settings: shared))

    async with running(make_settings()) as (first_app, http):
        admin = await admin_headers(http)
        await http.patch(
            f"/api/v1/users/{await _admin_id(http, admin)}", json={"dailyLimit": 42}, headers=admin
        )
        before = await first_app.state.services.database["users"].find_one({"email": ADMIN_EMAIL})

    other = make_settings(bootstrap_admin_password="a-different-password-456")
    async with running(other) as (second_app, http):
        after = await second_app.state.services.database["users"].find_one({"email": ADMIN_EMAIL})
        count = await second_app.state.services.database["users"].count_documents({})
        old_login = await http.post(
            "/api/v1/auth/token", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        new_login = await http.post(
            "/api/v1/auth/token",
            json={"email": ADMIN_EMAIL, "password": "a-different-password-456"},
        )

    assert after == before
    assert after["dailyLimit"] == 42
    assert count == 1
    assert old_login.status_code == 200
    assert new_login.status_code == 401


async def test_ensure_bootstrap_admin_leaves_an_existing_admin_unchanged(
    client: httpx.AsyncClient, app: FastAPI, make_settings: Callable[..., Settings]
) -> None:
    admin = await admin_headers(client)
    admin_id = await _admin_id(client, admin)
    await client.patch(f"/api/v1/users/{admin_id}", json={"dailyLimit": 7}, headers=admin)
    users = app.state.services.database["users"]
    before = await users.find_one({"_id": admin_id})
    other = make_settings(bootstrap_admin_password="a-different-password-456")

    await with_settings(app.state.services.users, other).ensure_bootstrap_admin()
    await app.state.services.users.ensure_bootstrap_admin()

    assert await users.find_one({"_id": admin_id}) == before
    assert await users.count_documents({"email": ADMIN_EMAIL}) == 1
    assert await token_for(client, ADMIN_EMAIL, ADMIN_PASSWORD)


async def test_bootstrap_never_promotes_an_existing_user(
    client: httpx.AsyncClient, app: FastAPI, make_settings: Callable[..., Settings]
) -> None:
    user = await register_user(client)
    users = app.state.services.database["users"]
    before = await users.find_one({"_id": user.user_id})
    takeover = make_settings(
        bootstrap_admin_email=user.email.upper(), bootstrap_admin_password="takeover-password"
    )

    await with_settings(app.state.services.users, takeover).ensure_bootstrap_admin()

    assert await users.find_one({"_id": user.user_id}) == before
    me = await client.get("/api/v1/users/me", headers=user.headers)
    assert me.json()["user"]["role"] == "user"


async def _admin_id(http: httpx.AsyncClient, admin: dict[str, str]) -> str:
    response = await http.get("/api/v1/users/me", headers=admin)
    user_id: str = response.json()["user"]["userId"]
    return user_id
