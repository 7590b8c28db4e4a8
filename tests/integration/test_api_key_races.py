"""The API key rules that span requests, raced across two apps on one database (the race
backends): at most five active keys however many are made at once, never no key however many
are revoked at once, and a revocation made through one app refused by the other within 5 s."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.factories import bearer, create_merchant

pytestmark = pytest.mark.race

Twin = tuple[FastAPI, httpx.AsyncClient]
KEYS = "/api/v1/merchants/me/api-keys"


async def test_keys_made_at_once_on_two_apps_stop_at_five(
    client: httpx.AsyncClient, app: FastAPI, twin: Twin
) -> None:
    _, other = twin
    merchant = await create_merchant(client)

    responses = await asyncio.gather(
        *(
            http.post(KEYS, json={"name": "k"}, headers=merchant.headers)
            for http in (client, other) * 4
        )
    )

    outcomes = Counter((r.status_code, r.json().get("error")) for r in responses)
    assert outcomes == {(201, None): 4, (409, "TOO_MANY_API_KEYS"): 4}, outcomes
    listed = (await other.get(KEYS, headers=merchant.headers)).json()["apiKeys"]
    assert len(listed) == 5
    made = {r.json()["apiKey"]["keyId"] for r in responses if r.status_code == 201}
    assert made <= {key["keyId"] for key in listed}
    for response in responses:
        if response.status_code == 201:
            me = await client.get("/api/v1/merchants/me", headers=bearer(response.json()["secret"]))
            assert me.status_code == 200


async def test_the_last_two_keys_revoked_at_once_leave_one(
    client: httpx.AsyncClient, twin: Twin
) -> None:
    _, other = twin
    merchant = await create_merchant(client)
    second = (await client.post(KEYS, headers=merchant.headers)).json()
    ids = [
        key["keyId"] for key in (await client.get(KEYS, headers=merchant.headers)).json()["apiKeys"]
    ]

    responses = await asyncio.gather(
        client.delete(f"{KEYS}/{ids[0]}", headers=bearer(second["secret"])),
        other.delete(f"{KEYS}/{ids[1]}", headers=merchant.headers),
    )

    outcomes = sorted((r.status_code, r.json().get("error")) for r in responses)
    assert outcomes == [(200, None), (409, "LAST_API_KEY")], outcomes
    listed = (await other.get(KEYS, headers=merchant.headers)).json()
    if "apiKeys" not in listed:  # the default key was the one revoked
        listed = (await other.get(KEYS, headers=bearer(second["secret"]))).json()
    assert len(listed["apiKeys"]) == 1


async def test_a_key_revoked_on_one_app_is_refused_by_the_other_within_5_s(
    client: httpx.AsyncClient, twin: Twin
) -> None:
    _, other = twin
    merchant = await create_merchant(client)
    second = (await client.post(KEYS, headers=merchant.headers)).json()
    assert (
        await other.get("/api/v1/merchants/me/payments", headers=bearer(second["secret"]))
    ).status_code == 200

    await client.delete(f"{KEYS}/{second['apiKey']['keyId']}", headers=merchant.headers)
    since = time.monotonic()

    while (
        status := (
            await other.get("/api/v1/merchants/me/payments", headers=bearer(second["secret"]))
        ).status_code
    ) == 200:
        assert time.monotonic() - since <= 5.0, "still served 5 s after the revocation"
        await asyncio.sleep(0.1)
    assert status == 401
