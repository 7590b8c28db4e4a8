"""`PATCH /api/v1/users/{userId}` never leaves the service without an active admin: a change
that would is a 409 `LAST_ADMIN`, alone or racing another."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.utils.clock import utcnow
from tests.fixtures.factories import admin_headers, register_user, update_user
from tests.fixtures.races import (
    OperatorNotImplemented,
    PushedSubdocumentStoredAsString,
    meet_at,
    nx_gap,
)

USERS = "/api/v1/users"


async def patch(
    client: httpx.AsyncClient, headers: dict[str, str], user_id: str, **changes: Any
) -> httpx.Response:
    return await client.patch(f"{USERS}/{user_id}", json=changes, headers=headers)


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"{USERS}/me", headers=headers)
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()["user"]
    return user


async def active_admins(app: FastAPI) -> list[str]:
    users = app.state.services.database["users"]
    return [doc["_id"] async for doc in users.find({"role": "admin", "isActive": True})]


def assert_last_admin(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "LAST_ADMIN"
    assert response.json()["message"]


async def second_admin(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> tuple[str, dict[str, str]]:
    """A registered user promoted to admin: its id and headers."""
    user = await register_user(client)
    await update_user(client, admin, user.user_id, role="admin")
    return user.user_id, user.headers


@pytest.mark.parametrize("change", [{"role": "user"}, {"isActive": False}], ids=str)
async def test_the_only_admin_cannot_take_itself_away(
    client: httpx.AsyncClient, app: FastAPI, change: dict[str, Any]
) -> None:
    admin = await admin_headers(client)
    admin_id = (await me(client, admin))["userId"]

    response = await patch(client, admin, admin_id, **change)

    assert_last_admin(response)
    assert await active_admins(app) == [admin_id]
    assert (await me(client, admin))["role"] == "admin"  # and it may still act as one


async def test_a_refused_change_changes_nothing_else(client: httpx.AsyncClient) -> None:
    admin = await admin_headers(client)
    before = await me(client, admin)

    response = await patch(client, admin, before["userId"], role="user", dailyLimit=5)

    assert_last_admin(response)
    assert await me(client, admin) == before


async def test_the_only_admin_may_still_change_its_other_fields(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_headers(client)
    admin_id = (await me(client, admin))["userId"]

    response = await patch(client, admin, admin_id, dailyLimit=7, role="admin", isActive=True)

    assert response.status_code == 200, response.text
    assert response.json()["user"]["dailyLimit"] == 7


@pytest.mark.parametrize("change", [{"role": "user"}, {"isActive": False}], ids=str)
async def test_with_two_admins_either_may_go_but_not_both(
    client: httpx.AsyncClient, app: FastAPI, change: dict[str, Any]
) -> None:
    admin = await admin_headers(client)
    admin_id = (await me(client, admin))["userId"]
    other_id, other = await second_admin(client, admin)

    first = await patch(client, admin, admin_id, **change)  # itself: the other stays
    second = await patch(client, other, other_id, **change)  # now the last one

    assert first.status_code == 200, first.text
    assert_last_admin(second)
    assert await active_admins(app) == [other_id]


async def test_an_inactive_admin_is_no_admin_left_behind(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    admin = await admin_headers(client)
    admin_id = (await me(client, admin))["userId"]
    other_id, _ = await second_admin(client, admin)
    await update_user(client, admin, other_id, isActive=False)

    response = await patch(client, admin, admin_id, role="user")

    assert_last_admin(response)
    assert await active_admins(app) == [admin_id]


async def test_demoting_an_inactive_admin_or_a_user_needs_no_other_admin(
    client: httpx.AsyncClient,
) -> None:
    admin = await admin_headers(client)
    other_id, _ = await second_admin(client, admin)
    await update_user(client, admin, other_id, isActive=False)
    user = await register_user(client)

    demoted = await patch(client, admin, other_id, role="user")
    deactivated = await patch(client, admin, user.user_id, isActive=False)

    assert demoted.status_code == 200, demoted.text
    assert deactivated.status_code == 200, deactivated.text


async def test_a_change_in_flight_keeps_its_admin_from_counting(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The guard itself: an admin with a live pending exit is not the admin left behind; one
    whose pending exit has expired (its process died) is."""
    admin = await admin_headers(client)
    admin_id = (await me(client, admin))["userId"]
    other_id, _ = await second_admin(client, admin)
    users = app.state.services.database["users"]

    live = utcnow() + timedelta(seconds=30)
    await users.update_one(
        {"_id": admin_id}, {"$push": {"pendingAdminExits": {"id": "live", "until": live}}}
    )
    refused = await patch(client, admin, other_id, role="user")
    await users.update_one({"_id": admin_id}, {"$pull": {"pendingAdminExits": {"id": "live"}}})
    expired = utcnow() - timedelta(seconds=1)
    await users.update_one(
        {"_id": admin_id}, {"$push": {"pendingAdminExits": {"id": "dead", "until": expired}}}
    )
    allowed = await patch(client, admin, other_id, role="user")

    assert_last_admin(refused)
    assert allowed.status_code == 200, allowed.text
    assert await active_admins(app) == [admin_id]
    stored = await users.find_one({"_id": other_id})
    assert stored["pendingAdminExits"] == []  # each request took its own record away again


@pytest.mark.parametrize("change", [{"role": "user"}, {"isActive": False}], ids=str)
@pytest.mark.race
@nx_gap(PushedSubdocumentStoredAsString, OperatorNotImplemented)
async def test_two_admins_taking_each_other_away_at_once_do_not_both_win(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any]
) -> None:
    admin = await admin_headers(client)
    admin_id = (await me(client, admin))["userId"]
    other_id, other = await second_admin(client, admin)
    meet_at(app.state.services.users, "update", 2, monkeypatch)

    responses = await asyncio.gather(
        patch(client, admin, other_id, **change), patch(client, other, admin_id, **change)
    )

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) <= 1, statuses
    for response in responses:
        if response.status_code != 200:
            assert_last_admin(response)  # both may lose: each saw the other on its way out
    assert len(await active_admins(app)) == 2 - statuses.count(200)


@pytest.mark.race
@nx_gap(PushedSubdocumentStoredAsString, OperatorNotImplemented)
async def test_three_admins_each_demoting_another_at_once_leave_one(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await admin_headers(client)
    admins = [((await me(client, admin))["userId"], admin)]
    admins += [await second_admin(client, admin) for _ in range(2)]
    meet_at(app.state.services.users, "update", 3, monkeypatch)

    responses = await asyncio.gather(
        *(
            patch(client, headers, admins[(n + 1) % 3][0], role="user")
            for n, (_, headers) in enumerate(admins)
        )
    )

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) <= 2, statuses
    for response in responses:
        if response.status_code != 200:
            assert_last_admin(response)
    assert len(await active_admins(app)) == 3 - statuses.count(200)
