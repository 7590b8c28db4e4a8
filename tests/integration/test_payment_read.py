"""Reading payments: one payment (owner, its merchant, an admin; 404 for everyone else), the
read cache never behind a change the caller saw succeed, and the history lists of users and
merchants with their pagination and filters."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from tests.fixtures.factories import create_merchant, register_user
from tests.fixtures.payments import (
    PAYMENT_FIELDS,
    Shop,
    cancel,
    open_shop,
    open_shop_and_pay,
    pay,
    read,
    refund,
)

SEOUL = ZoneInfo("Asia/Seoul")
UNKNOWN_PAYMENT_ID = "pay_01HZZZZZZZZZZZZZZZZZZZZZZZ"


def parse_instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso_ms(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def history(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    path: str = "/api/v1/payments",
    **params: Any,
) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [payment["paymentId"] for payment in body["payments"]]


async def forget_cached(app: FastAPI, payment: dict[str, Any]) -> None:
    """Drop both cache entries of `payment` (its user's and its merchant's)."""
    readers = payment["userId"], payment["merchantId"]
    await app.state.services.payments.cache.forget(payment["paymentId"], *readers)


async def cached(app: FastAPI, payment: dict[str, Any]) -> dict[str, Any] | None:
    """What the cache holds of `payment` for its user."""
    raw = await app.state.services.payments.cache.get(payment["userId"], payment["paymentId"])
    return json.loads(raw) if raw is not None else None


# --- one payment ----------------------------------------------------------------------------


async def test_owner_merchant_and_admin_read_the_payment(client: httpx.AsyncClient) -> None:
    shop, created = await open_shop_and_pay(client, 12_000)

    for headers in (shop.user.headers, shop.merchant.headers, shop.admin):
        response = await client.get(f"/api/v1/payments/{created['paymentId']}", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True
        assert body["payment"] == created


async def test_every_field_of_the_payment_is_present(client: httpx.AsyncClient) -> None:
    shop, created = await open_shop_and_pay(client, 12_000)

    payment = await read(client, shop.user.headers, created["paymentId"])

    assert set(payment) == PAYMENT_FIELDS
    assert payment["paymentId"].startswith("pay_")
    assert payment["userId"] == shop.user.user_id
    assert payment["merchantId"] == shop.merchant.merchant_id
    assert payment["amount"] == 12_000
    assert payment["currency"] == "KRW"
    assert payment["refundedAmount"] == 0
    assert payment["cancelReason"] is None
    assert payment["cancelledAt"] is None
    assert payment["createdAt"].endswith("Z")
    assert payment["completedAt"].endswith("Z")


@pytest.mark.parametrize("cache", ["cold", "warm"])
async def test_anyone_else_gets_the_same_404_as_for_an_unknown_id(
    client: httpx.AsyncClient, app: FastAPI, cache: str
) -> None:
    shop, payment = await open_shop_and_pay(client)
    payment_id = payment["paymentId"]
    stranger = await register_user(client)
    other_merchant = await create_merchant(client, shop.admin)
    if cache == "warm":
        await read(client, shop.user.headers, payment_id)
        assert await cached(app, payment) is not None
    else:
        await forget_cached(app, payment)

    for headers in (stranger.headers, other_merchant.headers):
        response = await client.get(f"/api/v1/payments/{payment_id}", headers=headers)
        assert response.status_code == 404, response.text
        body = response.json()
        assert body["error"] == "PAYMENT_NOT_FOUND"
        assert "payment" not in body
        assert payment_id not in response.text

    unknown = await client.get(f"/api/v1/payments/{UNKNOWN_PAYMENT_ID}", headers=shop.user.headers)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "PAYMENT_NOT_FOUND"
    assert unknown.json()["message"] == body["message"]


async def test_reading_needs_credentials(client: httpx.AsyncClient) -> None:
    _, payment = await open_shop_and_pay(client)

    response = await client.get(f"/api/v1/payments/{payment['paymentId']}")

    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"


async def test_a_read_served_from_the_cache_equals_the_first(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client)
    payment_id = payment["paymentId"]
    await forget_cached(app, payment)

    first = await read(client, shop.user.headers, payment_id)
    assert await cached(app, payment) == first  # the first read filled the cache
    second = await read(client, shop.user.headers, payment_id)
    by_merchant = await read(client, shop.merchant.headers, payment_id)

    assert second == first
    assert by_merchant == first


async def test_cached_reads_answer_byte_for_byte_like_the_route_and_are_counted_by_template(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The cached read answered at the edge (caller and cache entry already in hand) is the
    same response the route gives, is logged against the caller and counted under the route
    template in /metrics."""
    shop, payment = await open_shop_and_pay(client)
    payment_id = payment["paymentId"]
    await forget_cached(app, payment)

    slow = await client.get(f"/api/v1/payments/{payment_id}", headers=shop.user.headers)
    fast = await client.get(f"/api/v1/payments/{payment_id}", headers=shop.user.headers)

    assert slow.status_code == fast.status_code == 200
    assert fast.content == slow.content
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"
    assert fast.headers["x-request-id"]
    assert fast.headers["ratelimit-limit"]
    assert fast.headers["x-content-type-options"] == "nosniff"
    metrics = (await client.get("/metrics")).text
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("http_requests_total{")
        and 'route="/api/v1/payments/{paymentId}"' in line
        and 'status="200"' in line
    ]
    assert len(counted) == 1
    assert counted[0].endswith(" 2.0")
    assert payment_id not in metrics


async def test_a_read_right_after_a_cancel_shows_it_cancelled(client: httpx.AsyncClient) -> None:
    shop, payment = await open_shop_and_pay(client, 15_000)
    payment_id = payment["paymentId"]
    before = await read(client, shop.user.headers, payment_id)  # now cached as completed
    await read(client, shop.merchant.headers, payment_id)

    response = await cancel(client, shop.user, payment_id, "Ordered the wrong size")
    assert response.status_code == 200, response.text

    for headers in (shop.user.headers, shop.merchant.headers, shop.admin):
        after = await read(client, headers, payment_id)
        assert after["status"] == "cancelled"
        assert after["cancelReason"] == "Ordered the wrong size"
        assert after["refundedAmount"] == 15_000
        assert after["cancelledAt"] is not None
        assert after["updatedAt"] >= before["updatedAt"]


async def test_a_read_right_after_a_refund_shows_the_new_amounts(
    client: httpx.AsyncClient,
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    await read(client, shop.user.headers, payment_id)
    await read(client, shop.merchant.headers, payment_id)

    first = await refund(client, shop.merchant.headers, payment_id, 4_000)
    assert first.status_code == 200, first.text
    for headers in (shop.merchant.headers, shop.user.headers):
        after = await read(client, headers, payment_id)
        assert after["status"] == "partially_refunded"
        assert after["refundedAmount"] == 4_000

    rest = await refund(client, shop.merchant.headers, payment_id)
    assert rest.status_code == 200, rest.text
    for headers in (shop.merchant.headers, shop.user.headers, shop.admin):
        after = await read(client, headers, payment_id)
        assert after["status"] == "refunded"
        assert after["refundedAmount"] == 10_000


# --- the user's history ---------------------------------------------------------------------


async def test_history_lists_only_the_callers_payments_newest_first(
    client: httpx.AsyncClient,
) -> None:
    shop = await open_shop(client)
    other = await register_user(client)
    mine = [
        (await pay(client, shop.user, shop.merchant.merchant_id, 1_000 * n))["paymentId"]
        for n in range(1, 4)
    ]
    theirs = (await pay(client, other, shop.merchant.merchant_id))["paymentId"]

    body = await history(client, shop.user.headers)

    assert ids_of(body) == list(reversed(mine))
    assert theirs not in ids_of(body)
    assert {p["userId"] for p in body["payments"]} == {shop.user.user_id}
    created = [p["createdAt"] for p in body["payments"]]
    assert created == sorted(created, reverse=True)
    assert body["pagination"] == {
        "currentPage": 1,
        "totalPages": 1,
        "totalCount": 3,
        "hasNextPage": False,
        "hasPrevPage": False,
        "hasMore": False,
        "nextCursor": None,
    }
    assert ids_of(await history(client, other.headers)) == [theirs]


async def test_history_of_a_user_without_payments_is_empty(client: httpx.AsyncClient) -> None:
    user = await register_user(client)

    body = await history(client, user.headers)

    assert body["payments"] == []
    assert body["pagination"]["totalCount"] == 0
    assert body["pagination"]["currentPage"] == 1
    assert body["pagination"]["hasNextPage"] is False
    assert body["pagination"]["hasPrevPage"] is False


async def test_history_pages_through_all_payments(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    made = [
        (await pay(client, shop.user, shop.merchant.merchant_id, 1_000 + n))["paymentId"]
        for n in range(5)
    ]
    newest_first = list(reversed(made))

    pages = [await history(client, shop.user.headers, page=n, limit=2) for n in (1, 2, 3)]

    assert [ids_of(page) for page in pages] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:5],
    ]
    assert [page["pagination"] for page in pages] == [
        {
            "currentPage": n,
            "totalPages": 3,
            "totalCount": 5,
            "hasNextPage": n < 3,
            "hasPrevPage": n > 1,
            "hasMore": n < 3,
            "nextCursor": newest_first[2 * n - 1] if n < 3 else None,
        }
        for n in (1, 2, 3)
    ]
    beyond = await history(client, shop.user.headers, page=4, limit=2)
    assert beyond["payments"] == []
    assert beyond["pagination"]["currentPage"] == 4
    assert beyond["pagination"]["totalCount"] == 5
    assert beyond["pagination"]["hasNextPage"] is False


async def test_a_limit_above_100_is_clamped_to_100(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    made = [
        (await pay(client, shop.user, shop.merchant.merchant_id, 1_000))["paymentId"]
        for _ in range(101)
    ]

    first = await history(client, shop.user.headers, limit=500)
    second = await history(client, shop.user.headers, limit=500, page=2)
    default = await history(client, shop.user.headers)

    assert len(first["payments"]) == 100
    assert first["pagination"] == {
        "currentPage": 1,
        "totalPages": 2,
        "totalCount": 101,
        "hasNextPage": True,
        "hasPrevPage": False,
        "hasMore": True,
        "nextCursor": made[1],
    }
    assert ids_of(second) == [made[0]]
    assert second["pagination"] == {
        "currentPage": 2,
        "totalPages": 2,
        "totalCount": 101,
        "hasNextPage": False,
        "hasPrevPage": True,
        "hasMore": False,
        "nextCursor": None,
    }
    assert set(ids_of(first)) | set(ids_of(second)) == set(made)
    assert len(default["payments"]) == 20
    assert default["pagination"]["totalPages"] == 6


async def test_the_largest_page_and_limit_the_schema_allows_are_answered(
    client: httpx.AsyncClient,
) -> None:
    user = await register_user(client)
    largest = 2**31 - 1

    page = await history(client, user.headers, page=largest, limit=largest)

    assert page["payments"] == []
    assert page["pagination"]["currentPage"] == largest


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"page": "0"}, "page"),
        ({"page": "abc"}, "page"),
        # Bounded in the schema: a page whose skip, (page - 1) * limit, would not fit MongoDB's
        # 8-byte integers is refused before it reaches the driver (there an OverflowError).
        ({"page": str(2**31)}, "page"),
        ({"page": str(10**30)}, "page"),
        ({"limit": str(10**30)}, "limit"),
        ({"status": "bogus"}, "status"),
        ({"startDate": "not-a-date"}, "startDate"),
        ({"endDate": "not-a-date"}, "endDate"),
        ({"startDate": "2025-02-30"}, "startDate"),
        ({"endDate": "2025-01-01T25:00:00Z"}, "endDate"),
    ],
)
async def test_a_bad_query_value_is_a_422_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    user = await register_user(client)

    response = await client.get("/api/v1/payments", params=params, headers=user.headers)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    assert field in {detail["field"] for detail in body["details"]}


async def test_the_status_filter_keeps_only_that_status(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    merchant = shop.merchant.merchant_id
    completed = [(await pay(client, shop.user, merchant, 5_000))["paymentId"] for _ in range(2)]
    failed = (await pay(client, shop.user, merchant, 10_402, expect=402))["paymentId"]
    cancelled = (await pay(client, shop.user, merchant, 6_000))["paymentId"]
    assert (await cancel(client, shop.user, cancelled)).status_code == 200

    by_status = {
        status: await history(client, shop.user.headers, status=status)
        for status in ("completed", "failed", "cancelled", "refunded")
    }

    assert set(ids_of(by_status["completed"])) == set(completed)
    assert ids_of(by_status["failed"]) == [failed]
    assert ids_of(by_status["cancelled"]) == [cancelled]
    assert by_status["refunded"]["payments"] == []
    assert by_status["completed"]["pagination"]["totalCount"] == 2
    for status, body in by_status.items():
        assert {p["status"] for p in body["payments"]} <= {status}


async def test_dates_are_whole_business_days_in_seoul_inclusive(client: httpx.AsyncClient) -> None:
    shop, payment = await open_shop_and_pay(client)
    today = parse_instant(payment["createdAt"]).astimezone(SEOUL).date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)

    def query(start: Any, end: Any) -> dict[str, str]:
        return {"startDate": start.isoformat(), "endDate": end.isoformat()}

    included = [query(today, today), query(yesterday, today), query(today, tomorrow)]
    excluded = [query(yesterday, yesterday), query(tomorrow, tomorrow)]
    for params in included:
        body = await history(client, shop.user.headers, **params)
        assert ids_of(body) == [payment["paymentId"]], params
    for params in excluded:
        body = await history(client, shop.user.headers, **params)
        assert body["payments"] == [], params
        assert body["pagination"]["totalCount"] == 0
    assert ids_of(await history(client, shop.user.headers, startDate=today.isoformat())) == [
        payment["paymentId"]
    ]
    assert ids_of(await history(client, shop.user.headers, endDate=today.isoformat())) == [
        payment["paymentId"]
    ]
    assert (await history(client, shop.user.headers, startDate=tomorrow.isoformat()))[
        "payments"
    ] == []


async def test_date_times_are_inclusive_at_both_ends(client: httpx.AsyncClient) -> None:
    shop, payment = await open_shop_and_pay(client)
    created = parse_instant(payment["createdAt"])
    ms = timedelta(milliseconds=1)
    in_seoul = created.astimezone(SEOUL).isoformat(timespec="milliseconds")

    exact = await history(
        client, shop.user.headers, startDate=payment["createdAt"], endDate=payment["createdAt"]
    )
    offset = await history(client, shop.user.headers, startDate=in_seoul, endDate=in_seoul)
    after = await history(client, shop.user.headers, startDate=iso_ms(created + ms))
    before = await history(client, shop.user.headers, endDate=iso_ms(created - ms))

    assert ids_of(exact) == [payment["paymentId"]]
    assert ids_of(offset) == [payment["paymentId"]]
    assert after["payments"] == []
    assert before["payments"] == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2025-03-02", "2025-03-01"),
        ("2025-03-01T10:00:00Z", "2025-03-01T09:59:59Z"),
    ],
)
async def test_a_start_after_the_end_is_an_empty_range(
    client: httpx.AsyncClient, start: str, end: str
) -> None:
    """Each date is valid alone, as the OpenAPI description says; together they match
    nothing (a 422 here was a rule no schema could tell a client or a fuzzer)."""
    shop, _ = await open_shop_and_pay(client)

    body = await history(client, shop.user.headers, startDate=start, endDate=end)

    assert body["payments"] == []
    assert body["pagination"]["totalCount"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"startDate": "0001-01-01", "endDate": "9999-12-31"},
        {"startDate": "0001-01-01T00:00:00+05:00", "endDate": "9999-12-31T23:59:59-05:00"},
    ],
    ids=["dates", "date-times"],
)
async def test_dates_at_the_ends_of_the_calendar_are_the_ends_of_the_range(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    # In UTC these fall before year 1 or after 9999: once an OverflowError, a 500.
    shop, payment = await open_shop_and_pay(client)

    body = await history(client, shop.user.headers, **params)

    assert ids_of(body) == [payment["paymentId"]]


@pytest.mark.parametrize("field", ["startDate", "endDate"])
async def test_an_empty_date_is_a_422_not_a_missing_filter(
    client: httpx.AsyncClient, field: str
) -> None:
    user = await register_user(client)

    response = await client.get("/api/v1/payments", params={field: ""}, headers=user.headers)

    assert response.status_code == 422, response.text
    assert {detail["field"] for detail in response.json()["details"]} == {field}


async def test_history_is_for_users_only(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)

    as_merchant = await client.get("/api/v1/payments", headers=shop.merchant.headers)
    anonymous = await client.get("/api/v1/payments")

    assert as_merchant.status_code == 403
    assert as_merchant.json()["error"] == "FORBIDDEN"
    assert anonymous.status_code == 401


# --- the merchant's history -----------------------------------------------------------------


async def _two_merchants(client: httpx.AsyncClient) -> tuple[Shop, Any, list[str], list[str]]:
    shop = await open_shop(client)
    other_user = await register_user(client)
    rival = await create_merchant(client, shop.admin)
    ours = [
        (await pay(client, shop.user, shop.merchant.merchant_id, 2_000))["paymentId"],
        (await pay(client, other_user, shop.merchant.merchant_id, 3_000))["paymentId"],
        (await pay(client, shop.user, shop.merchant.merchant_id, 4_000))["paymentId"],
    ]
    theirs = [
        (await pay(client, shop.user, rival.merchant_id, 5_000))["paymentId"],
        (await pay(client, other_user, rival.merchant_id, 6_000))["paymentId"],
    ]
    return shop, rival, ours, theirs


async def test_merchant_history_shows_only_that_merchants_payments(
    client: httpx.AsyncClient,
) -> None:
    shop, rival, ours, theirs = await _two_merchants(client)

    body = await history(client, shop.merchant.headers, "/api/v1/merchants/me/payments")
    rival_body = await history(client, rival.headers, "/api/v1/merchants/me/payments")

    assert ids_of(body) == list(reversed(ours))
    assert {p["merchantId"] for p in body["payments"]} == {shop.merchant.merchant_id}
    assert body["pagination"]["totalCount"] == 3
    assert ids_of(rival_body) == list(reversed(theirs))


async def test_merchant_history_pages_and_filters_like_the_user_history(
    client: httpx.AsyncClient,
) -> None:
    shop, _, ours, _ = await _two_merchants(client)
    assert (await refund(client, shop.merchant.headers, ours[1])).status_code == 200

    page = await history(
        client, shop.merchant.headers, "/api/v1/merchants/me/payments", page=2, limit=2
    )
    refunded = await history(
        client, shop.merchant.headers, "/api/v1/merchants/me/payments", status="refunded"
    )
    bad = await client.get(
        "/api/v1/merchants/me/payments", params={"limit": "0"}, headers=shop.merchant.headers
    )

    assert ids_of(page) == [ours[0]]
    assert page["pagination"] == {
        "currentPage": 2,
        "totalPages": 2,
        "totalCount": 3,
        "hasNextPage": False,
        "hasPrevPage": True,
        "hasMore": False,
        "nextCursor": None,
    }
    assert ids_of(refunded) == [ours[1]]
    assert bad.status_code == 422
    assert "limit" in {detail["field"] for detail in bad.json()["details"]}


async def test_a_user_token_on_the_merchant_history_is_a_403(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    await pay(client, shop.user, shop.merchant.merchant_id)

    response = await client.get("/api/v1/merchants/me/payments", headers=shop.user.headers)

    assert response.status_code == 403
    assert response.json()["error"] == "FORBIDDEN"
    assert "payments" not in response.json()
