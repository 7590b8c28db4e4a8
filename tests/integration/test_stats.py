"""`GET /api/v1/users/me/stats`: totals, today's spending and what is left of the daily limit."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from payments_api.config.settings import Settings
from tests.fixtures.apps import running
from tests.fixtures.factories import (
    RegisteredUser,
    admin_headers,
    create_merchant,
    register_user,
    update_user,
)
from tests.fixtures.payments import payment_body, post_payment, user_and_merchant

STATS = "/api/v1/users/me/stats"
STATS_FIELDS = {
    "totalTransactions",
    "totalAmount",
    "lastTransactionAt",
    "todaySpent",
    "dailyLimit",
    "remainingToday",
}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


async def attempt(
    client: httpx.AsyncClient, user: RegisteredUser, merchant_id: str, amount: int
) -> httpx.Response:
    """`user` tries to pay `amount`: the answer, whatever it is."""
    return await post_payment(client, user, payment_body(merchant_id, amount))


async def get_stats(client: httpx.AsyncClient, user: RegisteredUser) -> dict[str, Any]:
    response = await client.get(STATS, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert set(body["stats"]) == STATS_FIELDS
    stats: dict[str, Any] = body["stats"]
    return stats


async def test_new_user_has_zero_stats_and_the_default_limit(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    user = await register_user(client)

    stats = await get_stats(client, user)

    assert stats == {
        "totalTransactions": 0,
        "totalAmount": 0,
        "lastTransactionAt": None,
        "todaySpent": 0,
        "dailyLimit": settings.default_daily_limit,
        "remainingToday": settings.default_daily_limit,
    }
    assert settings.default_daily_limit == 2_000_000


async def test_new_user_limit_follows_default_daily_limit(
    make_settings: Callable[..., Settings],
) -> None:
    async with running(make_settings(default_daily_limit=75_000)) as (_, client):
        user = await register_user(client)

        stats = await get_stats(client, user)

        assert stats["dailyLimit"] == 75_000
        assert stats["remainingToday"] == 75_000


async def test_stats_add_up_completed_payments(client: httpx.AsyncClient) -> None:
    user, merchant = await user_and_merchant(client)
    await get_stats(client, user)  # fills the stats cache before the payments
    first = await attempt(client, user, merchant.merchant_id, 12_000)
    second = await attempt(client, user, merchant.merchant_id, 30_500)
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text

    stats = await get_stats(client, user)

    assert stats["totalTransactions"] == 2
    assert stats["totalAmount"] == 42_500
    assert stats["todaySpent"] == 42_500
    assert stats["dailyLimit"] == 2_000_000
    assert stats["remainingToday"] == stats["dailyLimit"] - stats["todaySpent"]
    assert stats["lastTransactionAt"] is not None
    assert ISO_UTC.match(stats["lastTransactionAt"])
    last = datetime.fromisoformat(stats["lastTransactionAt"].replace("Z", "+00:00"))
    created = datetime.fromisoformat(second.json()["payment"]["createdAt"].replace("Z", "+00:00"))
    assert last >= created


async def test_declined_payment_counts_in_no_stat(client: httpx.AsyncClient) -> None:
    user, merchant = await user_and_merchant(client)
    assert (await attempt(client, user, merchant.merchant_id, 10_000)).status_code == 201
    before = await get_stats(client, user)

    declined = await attempt(client, user, merchant.merchant_id, 9_402)

    assert declined.status_code == 402, declined.text
    assert await get_stats(client, user) == before


async def test_stats_are_the_callers_own(client: httpx.AsyncClient) -> None:
    payer = await register_user(client)
    other = await register_user(client)
    merchant = await create_merchant(client)
    assert (await attempt(client, payer, merchant.merchant_id, 10_000)).status_code == 201

    stats = await get_stats(client, other)

    assert stats["totalTransactions"] == 0
    assert stats["todaySpent"] == 0


async def test_stats_show_a_daily_limit_changed_by_an_admin(client: httpx.AsyncClient) -> None:
    user, merchant = await user_and_merchant(client)
    assert (await attempt(client, user, merchant.merchant_id, 10_000)).status_code == 201
    cached = await get_stats(client, user)  # the stats are now cached with the old limit
    assert cached["dailyLimit"] == 2_000_000

    await update_user(client, await admin_headers(client), user.user_id, dailyLimit=300_000)

    stats = await get_stats(client, user)
    assert stats["dailyLimit"] == 300_000
    assert stats["todaySpent"] == 10_000
    assert stats["remainingToday"] == 290_000
    assert stats["totalTransactions"] == 1


async def test_stats_remaining_never_goes_below_zero_after_a_lowered_limit(
    client: httpx.AsyncClient,
) -> None:
    user, merchant = await user_and_merchant(client)
    assert (await attempt(client, user, merchant.merchant_id, 50_000)).status_code == 201
    await update_user(client, await admin_headers(client), user.user_id, dailyLimit=20_000)

    stats = await get_stats(client, user)

    assert stats["dailyLimit"] == 20_000
    assert stats["todaySpent"] == 50_000
    assert stats["remainingToday"] == 0
    refused = await attempt(client, user, merchant.merchant_id, 1_000)
    assert refused.status_code == 422
    assert refused.json()["error"] == "DAILY_LIMIT_EXCEEDED"
    assert refused.json()["remainingToday"] == 0


async def test_stats_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(STATS)

    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"


async def test_stats_for_a_merchant_key_is_403(client: httpx.AsyncClient) -> None:
    merchant = await create_merchant(client)

    response = await client.get(STATS, headers=merchant.headers)

    assert response.status_code == 403
    assert response.json()["error"] == "FORBIDDEN"
