"""Cursor pages of both histories (`startingAfter` / `endingBefore` a paymentId): every payment
exactly once however many are created meanwhile, ties in `createdAt` included; the cursors
and `hasMore` at both ends; filters with cursors; and `INVALID_CURSOR`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.services import payments as payments_service
from payments_api.utils.clock import utcnow
from tests.fixtures.payments import PAYMENTS, Shop, open_shop, pay, payment_body, post_payment

MERCHANT_HISTORY = "/api/v1/merchants/me/payments"
HISTORIES = [PAYMENTS, MERCHANT_HISTORY]


def reader(shop: Shop, path: str) -> dict[str, str]:
    return shop.user.headers if path == PAYMENTS else shop.merchant.headers


async def page_of(
    client: httpx.AsyncClient, shop: Shop, path: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=reader(shop, path))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [payment["paymentId"] for payment in body["payments"]]


async def made(client: httpx.AsyncClient, shop: Shop, count: int, amount: int = 1_000) -> list[str]:
    """`count` completed payments, oldest first."""
    return [
        (await pay(client, shop.user, shop.merchant.merchant_id, amount))["paymentId"]
        for _ in range(count)
    ]


def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """From now on, every payment is created at one instant (to the millisecond, as MongoDB
    keeps it): ties in `createdAt` that only the paymentId orders."""
    now = utcnow()
    instant = now.replace(microsecond=now.microsecond // 1000 * 1000)
    monkeypatch.setattr(payments_service, "utcnow", lambda: instant)
    return instant


def newest_first(payments: list[dict[str, Any]]) -> list[str]:
    """The contract's order, worked out from the payments themselves."""
    ordered = sorted(payments, key=lambda p: (p["createdAt"], p["paymentId"]), reverse=True)
    return [p["paymentId"] for p in ordered]


@pytest.mark.parametrize("path", HISTORIES)
async def test_following_next_cursor_visits_every_payment_once_while_more_are_created(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    shop = await open_shop(client)
    await made(client, shop, 2)
    with monkeypatch.context() as frozen:
        instant = frozen_clock(frozen)
        await made(client, shop, 5)  # five payments at one instant
    await made(client, shop, 2)
    existing = (await page_of(client, shop, path, limit=100))["payments"]
    expected = newest_first(existing)
    assert sum(p["createdAt"] == instant.isoformat()[:23] + "Z" for p in existing) == 5
    assert ids_of(await page_of(client, shop, path, limit=100)) == expected  # pages agree

    visited: list[str] = []
    body = await page_of(client, shop, path, limit=2)
    pages = 1
    while True:
        visited += ids_of(body)
        await made(client, shop, 1)  # a new payment between every two pages
        cursor = body["pagination"]["nextCursor"]
        if cursor is None:
            break
        assert body["pagination"]["hasMore"] is True
        body = await page_of(client, shop, path, limit=2, startingAfter=cursor)
        assert set(body["pagination"]) == {"hasMore", "nextCursor", "prevCursor"}
        pages += 1

    assert visited == expected
    assert pages == 5
    assert body["pagination"] == {"hasMore": False, "nextCursor": None, "prevCursor": visited[-1]}


@pytest.mark.parametrize("path", HISTORIES)
async def test_following_prev_cursor_back_visits_every_payment_once(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    shop = await open_shop(client)
    with monkeypatch.context() as frozen:
        frozen_clock(frozen)
        await made(client, shop, 4)
    await made(client, shop, 3)
    expected = ids_of(await page_of(client, shop, path, limit=100))
    oldest = expected[-1]

    visited: list[str] = []
    body = await page_of(client, shop, path, limit=2, endingBefore=oldest)
    while True:
        visited = ids_of(body) + visited
        cursor = body["pagination"]["prevCursor"]
        if cursor is None:
            break
        assert body["pagination"]["hasMore"] is True
        body = await page_of(client, shop, path, limit=2, endingBefore=cursor)

    assert body["pagination"]["hasMore"] is False
    assert visited == expected[:-1]


async def test_ending_before_gives_the_nearest_newer_payments_newest_first(
    client: httpx.AsyncClient,
) -> None:
    shop = await open_shop(client)
    p = await made(client, shop, 6)  # p[0] oldest … p[5] newest

    middle = await page_of(client, shop, PAYMENTS, limit=2, endingBefore=p[1])
    top = await page_of(client, shop, PAYMENTS, limit=2, endingBefore=p[3])
    above_all = await page_of(client, shop, PAYMENTS, limit=2, endingBefore=p[5])

    assert ids_of(middle) == [p[3], p[2]]
    assert middle["pagination"] == {"hasMore": True, "nextCursor": p[2], "prevCursor": p[3]}
    assert ids_of(top) == [p[5], p[4]]
    assert top["pagination"] == {"hasMore": False, "nextCursor": p[4], "prevCursor": None}
    assert above_all["payments"] == []
    assert above_all["pagination"] == {"hasMore": False, "nextCursor": None, "prevCursor": None}


async def test_starting_after_at_both_ends(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    p = await made(client, shop, 5)

    first = await page_of(client, shop, PAYMENTS, limit=2)
    after_newest = await page_of(client, shop, PAYMENTS, limit=2, startingAfter=p[4])
    last = await page_of(client, shop, PAYMENTS, limit=2, startingAfter=p[1])
    beyond = await page_of(client, shop, PAYMENTS, limit=2, startingAfter=p[0])
    exact = await page_of(client, shop, PAYMENTS, limit=2, startingAfter=p[2])

    assert ids_of(first) == [p[4], p[3]]
    assert first["pagination"] == {
        "currentPage": 1,
        "totalPages": 3,
        "totalCount": 5,
        "hasNextPage": True,
        "hasPrevPage": False,
        "hasMore": True,
        "nextCursor": p[3],
    }
    assert ids_of(after_newest) == [p[3], p[2]]
    assert after_newest["pagination"] == {"hasMore": True, "nextCursor": p[2], "prevCursor": p[3]}
    assert ids_of(last) == [p[0]]
    assert last["pagination"] == {"hasMore": False, "nextCursor": None, "prevCursor": p[0]}
    assert beyond["payments"] == []
    assert beyond["pagination"] == {"hasMore": False, "nextCursor": None, "prevCursor": None}
    # Exactly `limit` left: nothing older, so no next cursor (not a last empty page).
    assert ids_of(exact) == [p[1], p[0]]
    assert exact["pagination"] == {"hasMore": False, "nextCursor": None, "prevCursor": p[1]}


@pytest.mark.parametrize("path", HISTORIES)
async def test_filters_combine_with_cursors(client: httpx.AsyncClient, path: str) -> None:
    shop = await open_shop(client)
    merchant = shop.merchant.merchant_id
    statuses: list[tuple[str, str]] = []
    for n in range(8):
        amount = 10_402 if n % 2 else 10_000  # every other one declined
        order = "order-declined" if n % 2 else f"order-{n}"  # declines leave it free
        body = payment_body(merchant, amount, merchantOrderId=order)
        response = await post_payment(client, shop.user, body)
        statuses.append(
            (response.json()["payment"]["paymentId"], response.json()["payment"]["status"])
        )
    failed = [pid for pid, status in reversed(statuses) if status == "failed"]
    completed = [pid for pid, status in reversed(statuses) if status == "completed"]

    after = await page_of(client, shop, path, status="failed", limit=2, startingAfter=failed[0])
    # A cursor is a position: one the filter leaves out (a completed one) still places the page.
    placed = await page_of(client, shop, path, status="failed", limit=1, startingAfter=completed[1])
    before = await page_of(
        client, shop, path, status="completed", limit=1, endingBefore=completed[3]
    )
    by_order = await page_of(
        client, shop, path, merchantOrderId="order-declined", startingAfter=failed[0]
    )
    dated = await page_of(
        client, shop, path, startDate="2000-01-01", limit=3, startingAfter=failed[0]
    )

    assert ids_of(after) == failed[1:3]
    assert after["pagination"] == {
        "hasMore": True,
        "nextCursor": failed[2],
        "prevCursor": failed[1],
    }
    assert ids_of(placed) == [failed[2]]
    assert ids_of(before) == [completed[2]]
    assert before["pagination"] == {
        "hasMore": True,
        "nextCursor": completed[2],
        "prevCursor": completed[2],
    }
    assert ids_of(by_order) == failed[1:]
    everything = [pid for pid, _ in reversed(statuses)]
    start = everything.index(failed[0]) + 1
    assert ids_of(dated) == everything[start : start + 3]


async def test_both_histories_filter_by_order_id(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    merchant = shop.merchant.merchant_id
    wanted = await post_payment(client, shop.user, payment_body(merchant, merchantOrderId="o-A"))
    await post_payment(client, shop.user, payment_body(merchant, merchantOrderId="o-B"))
    await post_payment(client, shop.user, payment_body(merchant))

    for path in HISTORIES:
        found = await page_of(client, shop, path, merchantOrderId="o-A")
        assert ids_of(found) == [wanted.json()["payment"]["paymentId"]], path
        assert found["pagination"]["totalCount"] == 1
        assert (await page_of(client, shop, path, merchantOrderId="o-C"))["payments"] == []


@pytest.mark.parametrize("path", HISTORIES)
@pytest.mark.parametrize(
    "value", ["", "x" * 65, "주문", "a\tb"], ids=["empty", "65", "utf8", "tab"]
)
async def test_a_bad_order_id_filter_is_a_422(
    client: httpx.AsyncClient, path: str, value: str
) -> None:
    shop = await open_shop(client)

    response = await client.get(path, params={"merchantOrderId": value}, headers=reader(shop, path))

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert {d["field"] for d in response.json()["details"]} == {"merchantOrderId"}


def refusal(response: httpx.Response) -> dict[str, Any]:
    """The 422 INVALID_CURSOR body, without its request id."""
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == "INVALID_CURSOR"
    assert body["message"]
    assert "payments" not in body
    return {name: value for name, value in body.items() if name != "requestId"}


@pytest.mark.parametrize("path", HISTORIES)
async def test_cursors_together_or_with_a_page_are_invalid(
    client: httpx.AsyncClient, path: str
) -> None:
    shop = await open_shop(client)
    p = await made(client, shop, 3)
    headers = reader(shop, path)

    asked = [
        {"startingAfter": p[2], "endingBefore": p[0]},
        {"startingAfter": p[2], "page": "1"},
        {"endingBefore": p[0], "page": "2"},
    ]
    for params in asked:
        refusal(await client.get(path, params=params, headers=headers))
    assert (
        refusal(await client.get(path, params=asked[0], headers=headers))["message"]
        != refusal(await client.get(path, params=asked[1], headers=headers))["message"]
    )


async def test_a_cursor_that_is_not_one_of_the_callers_payments_is_invalid(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    other_shop = await open_shop(client)
    mine = (await made(client, shop, 1))[0]
    # Paid to this shop's merchant by another user: the merchant's, not this user's.
    by_other_user = (await pay(client, other_shop.user, shop.merchant.merchant_id))["paymentId"]
    elsewhere = (await made(client, other_shop, 1))[0]
    unknown = "pay_01HZZZZZZZZZZZZZZZZZZZZZZZ"

    def asked(path: str, headers: dict[str, str], cursor: str) -> Any:
        return client.get(path, params={"startingAfter": cursor}, headers=headers)

    user, merchant = shop.user.headers, shop.merchant.headers
    refused = [
        refusal(await asked(PAYMENTS, user, unknown)),
        refusal(await asked(PAYMENTS, user, by_other_user)),
        refusal(await asked(PAYMENTS, user, elsewhere)),
        refusal(await asked(MERCHANT_HISTORY, merchant, unknown)),
        refusal(await asked(MERCHANT_HISTORY, merchant, elsewhere)),
    ]
    for name in ("endingBefore", "startingAfter"):
        unknown_refusal = refusal(await client.get(PAYMENTS, params={name: unknown}, headers=user))
        theirs = refusal(await client.get(PAYMENTS, params={name: elsewhere}, headers=user))
        assert unknown_refusal == theirs  # the same answer: existence is not leaked

    assert refused[0] == refused[1] == refused[2]
    assert refused[3] == refused[4]
    # The merchant's own payment, whoever paid it, is a cursor of its history.
    ok = await client.get(MERCHANT_HISTORY, params={"endingBefore": mine}, headers=merchant)
    assert ok.status_code == 200, ok.text
    assert ids_of(ok.json()) == [by_other_user]


async def test_the_description_declares_both_pagination_shapes(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for path in HISTORIES:
        ok = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        envelope = schemas[ok["schema"]["$ref"].rsplit("/", 1)[1]]
        shapes = envelope["properties"]["pagination"]["anyOf"]
        required = [set(schemas[s["$ref"].rsplit("/", 1)[1]]["required"]) for s in shapes]
        assert {"hasMore", "nextCursor", "prevCursor"} in required
        assert {"currentPage", "totalPages", "totalCount", "hasMore", "nextCursor"} <= max(
            required, key=len
        )
        names = {p["name"] for p in document["paths"][path]["get"]["parameters"]}
        assert {"startingAfter", "endingBefore", "merchantOrderId", "page"} <= names
        assert "422" in document["paths"][path]["get"]["responses"]
