"""A merchant's own events: `GET /api/v1/merchants/me/events` (newest first, filtered, paged by
cursor, never another merchant's and never a draft) and
`POST /api/v1/merchants/me/events/{eventId}/redeliver` (delivered again, from scratch)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.models import event as events_model
from payments_api.utils import ids
from tests.fixtures.crashes import ProcessDied, die_once
from tests.fixtures.factories import create_merchant, register_user
from tests.fixtures.payments import (
    Shop,
    cancel,
    collection,
    open_shop,
    open_shop_and_pay,
    pay,
    refund,
)
from tests.fixtures.reconciliation import (
    Clock,
    abandoned_payment,
    last_change,
    reconcile_after,
    reconciler_for,
)
from tests.fixtures.servers import Receiver

OWN_EVENTS = "/api/v1/merchants/me/events"
ADMIN_EVENTS = "/api/v1/events"


async def own_events(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> dict[str, Any]:
    """The answer of one `GET /api/v1/merchants/me/events`, which must succeed."""
    response = await client.get(OWN_EVENTS, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True
    assert set(body) == {"success", "events", "pagination"}
    return body


async def every_page(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[list[str]]:
    """The event ids of each page, following `nextCursor` from the first page to the last."""
    pages: list[list[str]] = []
    cursor: str | None = None
    for _ in range(100):  # bounded: a cursor that never ends fails the test, not the run
        query = {**params, **({"startingAfter": cursor} if cursor else {})}
        body = await own_events(client, headers, **query)
        pages.append([event["eventId"] for event in body["events"]])
        pagination = body["pagination"]
        assert pagination["hasMore"] is (pagination["nextCursor"] is not None)
        if not pagination["hasMore"]:
            return pages
        assert pagination["nextCursor"] == pages[-1][-1]
        cursor = pagination["nextCursor"]
    pytest.fail("nextCursor never ran out")


async def admin_view(
    client: httpx.AsyncClient, shop: Shop, payment_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The admin's `GET /api/v1/events` view of these payments' events, by event id."""
    found: dict[str, dict[str, Any]] = {}
    for payment_id in payment_ids:
        response = await client.get(
            ADMIN_EVENTS, params={"paymentId": payment_id}, headers=shop.admin
        )
        assert response.status_code == 200, response.text
        found |= {event["eventId"]: event for event in response.json()["events"]}
    return found


def newest_first(events: list[dict[str, Any]]) -> list[str]:
    """Event ids ordered as the contract orders them: by createdAt, then id, both descending."""
    ordered = sorted(events, key=lambda e: (e["createdAt"], e["eventId"]), reverse=True)
    return [event["eventId"] for event in ordered]


async def busy_shop(client: httpx.AsyncClient, **merchant_fields: Any) -> tuple[Shop, list[str]]:
    """A shop whose merchant has events of several payments and types: two payments, one of
    them refunded twice, the other cancelled (five events). Its payment ids."""
    shop, first = await open_shop_and_pay(client, 10_000, **merchant_fields)
    second = await pay(client, shop.user, shop.merchant.merchant_id, 20_000)
    for amount in (1_000, 2_000):
        answer = await refund(client, shop.merchant.headers, first["paymentId"], amount)
        assert answer.status_code == 200, answer.text
    assert (await cancel(client, shop.user, second["paymentId"])).status_code == 200
    return shop, [first["paymentId"], second["paymentId"]]


# --- listing -------------------------------------------------------------------------------


async def test_a_merchant_lists_only_its_own_events_newest_first_as_the_admin_sees_them(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment_ids = await busy_shop(client, webhookUrl=receiver.url)
    stranger, stranger_payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    assert await app.state.services.dispatcher.run_once() == 6

    body = await own_events(client, shop.merchant.headers)

    admin_sees = await admin_view(client, shop, payment_ids)
    assert len(admin_sees) == 5
    assert [event["eventId"] for event in body["events"]] == newest_first(list(admin_sees.values()))
    assert body["events"] == [admin_sees[event["eventId"]] for event in body["events"]]
    assert body["pagination"] == {"hasMore": False, "nextCursor": None}
    for event in body["events"]:
        assert event["merchantId"] == shop.merchant.merchant_id
        [delivery] = event["deliveries"]
        assert (delivery["url"], delivery["status"]) == (receiver.url, "delivered")
        assert [attempt["statusCode"] for attempt in delivery["attempts"]] == [200]
    theirs = await own_events(client, stranger.merchant.headers)
    assert [event["paymentId"] for event in theirs["events"]] == [stranger_payment["paymentId"]]


async def test_events_are_filtered_by_payment_and_by_type(client: httpx.AsyncClient) -> None:
    shop, (refunded, cancelled) = await busy_shop(client)
    _, stranger_payment = await open_shop_and_pay(client)
    headers = shop.merchant.headers

    def told(body: dict[str, Any]) -> list[tuple[str, str]]:
        return [(event["paymentId"], event["type"]) for event in body["events"]]

    assert told(await own_events(client, headers, paymentId=refunded)) == [
        (refunded, "payment.refunded"),
        (refunded, "payment.refunded"),
        (refunded, "payment.completed"),
    ]
    assert told(await own_events(client, headers, type="payment.completed")) == [
        (cancelled, "payment.completed"),
        (refunded, "payment.completed"),
    ]
    assert told(
        await own_events(client, headers, paymentId=cancelled, type="payment.cancelled")
    ) == [(cancelled, "payment.cancelled")]
    assert (
        told(await own_events(client, headers, paymentId=refunded, type="payment.cancelled")) == []
    )
    assert told(await own_events(client, headers, paymentId=stranger_payment["paymentId"])) == []


async def test_following_next_cursor_visits_every_event_once_while_new_ones_arrive(
    client: httpx.AsyncClient,
) -> None:
    shop, _ = await busy_shop(client)
    headers = shop.merchant.headers
    before = [event["eventId"] for event in (await own_events(client, headers))["events"]]

    first_page = await own_events(client, headers, limit=2)
    assert [event["eventId"] for event in first_page["events"]] == before[:2]
    assert first_page["pagination"] == {"hasMore": True, "nextCursor": before[1]}
    await pay(client, shop.user, shop.merchant.merchant_id, 5_000)  # newer than every page
    rest = await every_page(client, headers, limit=2, startingAfter=before[1])

    assert [len(page) for page in rest] == [2, 1]
    assert before[:2] + [event_id for page in rest for event_id in page] == before
    assert len(await every_page(client, headers, limit=4)) == 2  # the new one on the first


async def test_events_created_at_the_same_instant_are_ordered_by_id_and_paged_without_loss(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, _ = await busy_shop(client)
    instant = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    await collection(app, "events").update_many(
        {"merchantId": shop.merchant.merchant_id}, {"$set": {"createdAt": instant}}
    )

    pages = await every_page(client, shop.merchant.headers, limit=1)

    visited = [event_id for page in pages for event_id in page]
    assert len(visited) == 5
    assert visited == sorted(visited, reverse=True)


async def test_a_draft_is_never_listed_until_its_step_is_finished(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, 10_000)
    die_once(monkeypatch, events_model, "publish_draft")
    with pytest.raises(ProcessDied):
        await app.state.services.settlement.complete(payment, "gtx_died")
    [draft] = [e async for e in collection(app, "events").find({"paymentId": payment.id})]
    assert draft["status"] == "draft"
    headers = shop.merchant.headers

    assert (await own_events(client, headers))["events"] == []
    assert (await own_events(client, headers, paymentId=payment.id))["events"] == []
    cursor = await client.get(OWN_EVENTS, params={"startingAfter": draft["_id"]}, headers=headers)
    assert (cursor.status_code, cursor.json()["error"]) == (422, "INVALID_CURSOR")

    clock = Clock(await last_change(app, payment.id) + reconcile_after(app))
    await reconciler_for(app, clock).run_once()
    [event] = (await own_events(client, headers))["events"]
    assert (event["eventId"], event["type"]) == (draft["_id"], "payment.completed")


@pytest.mark.parametrize("whose", ["unknown", "another-merchants"])
async def test_a_cursor_that_is_not_one_of_the_callers_events_is_invalid(
    client: httpx.AsyncClient, whose: str
) -> None:
    shop, _ = await open_shop_and_pay(client)
    stranger = await own_events(client, (await open_shop_and_pay(client))[0].merchant.headers)
    cursor = "evt_01ZZZZZZZZZZZZZZZZZZZZZZZZ"
    if whose == "another-merchants":
        cursor = stranger["events"][0]["eventId"]

    response = await client.get(
        OWN_EVENTS, params={"startingAfter": cursor}, headers=shop.merchant.headers
    )

    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"error", "message", "requestId"}
    assert body["error"] == "INVALID_CURSOR"
    assert body["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "payment.unknown"}, "type"),
        ({"type": "PAYMENT.COMPLETED"}, "type"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": str(2**31)}, "limit"),
        ({"paymentId": ""}, "paymentId"),
        ({"startingAfter": ""}, "startingAfter"),
    ],
)
async def test_a_bad_query_value_is_a_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    shop, _ = await open_shop_and_pay(client)

    response = await client.get(OWN_EVENTS, params=params, headers=shop.merchant.headers)

    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in body["details"]] == [field]


async def test_a_page_holds_20_by_default_and_a_limit_above_100_is_clamped_to_100(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client)
    events = collection(app, "events")
    stored = await events.find_one({"paymentId": payment["paymentId"]})
    await events.insert_many(  # 120 more events of the merchant's (as if of other payments)
        [
            {**stored, "_id": ids.event_id(), "dedupeKey": f"copy:{n}", "paymentId": f"pay_{n}"}
            for n in range(120)
        ]
    )
    headers = shop.merchant.headers

    default = await own_events(client, headers)
    clamped = await own_events(client, headers, limit=101)

    assert len(default["events"]) == 20
    assert default["pagination"]["hasMore"] is True
    assert len(clamped["events"]) == 100
    assert clamped["pagination"] == {
        "hasMore": True,
        "nextCursor": clamped["events"][-1]["eventId"],
    }
    assert sum(len(page) for page in await every_page(client, headers, limit=100)) == 121


async def test_only_a_merchant_lists_its_events(client: httpx.AsyncClient) -> None:
    shop, _ = await open_shop_and_pay(client)

    assert (await client.get(OWN_EVENTS)).status_code == 401
    for headers in (shop.user.headers, shop.admin):
        response = await client.get(OWN_EVENTS, headers=headers)
        assert (response.status_code, response.json()["error"]) == (403, "FORBIDDEN")


# --- redelivery ----------------------------------------------------------------------------


async def test_a_merchant_redelivers_its_own_event_and_it_arrives_again(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    dispatcher = app.state.services.dispatcher
    assert await dispatcher.run_once() == 1
    [event] = (await own_events(client, shop.merchant.headers))["events"]

    response = await client.post(
        f"{OWN_EVENTS}/{event['eventId']}/redeliver", headers=shop.merchant.headers
    )

    assert response.status_code == 202, response.text
    assert response.json()["success"] is True
    assert (response.json()["event"]["eventId"], response.json()["event"]["status"]) == (
        event["eventId"],
        "pending",
    )
    assert await dispatcher.run_once() == 1
    first, second = receiver.of(event["eventId"])
    assert second.body == first.body
    assert second.json["data"]["payment"]["paymentId"] == payment["paymentId"]
    [again] = (await own_events(client, shop.merchant.headers))["events"]
    assert [d["status"] for d in again["deliveries"]] == ["delivered", "delivered"]


async def test_another_merchants_event_an_unknown_one_or_a_draft_is_not_found_to_redeliver(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop, _ = await open_shop_and_pay(client, webhookUrl=receiver.url)
    assert await app.state.services.dispatcher.run_once() == 1
    [event] = (await own_events(client, shop.merchant.headers))["events"]
    stranger = await create_merchant(client, shop.admin)
    payment = await abandoned_payment(app, shop, 10_000)
    die_once(monkeypatch, events_model, "publish_draft")
    with pytest.raises(ProcessDied):
        await app.state.services.settlement.complete(payment, "gtx_died")
    [draft] = [e async for e in collection(app, "events").find({"status": "draft"})]

    attempts = [
        (stranger.headers, event["eventId"]),
        (shop.merchant.headers, "evt_01ZZZZZZZZZZZZZZZZZZZZZZZZ"),
        (shop.merchant.headers, draft["_id"]),
        (shop.admin, draft["_id"]),  # not even an admin: a draft is no event yet
    ]
    for headers, event_id in attempts:
        path = OWN_EVENTS if headers is not shop.admin else ADMIN_EVENTS
        response = await client.post(f"{path}/{event_id}/redeliver", headers=headers)
        assert response.status_code == 404, (event_id, response.text)
        assert response.json()["error"] == "EVENT_NOT_FOUND"

    [unchanged] = (await own_events(client, shop.merchant.headers))["events"]
    assert unchanged == event
    still = await collection(app, "events").find_one({"_id": draft["_id"]})
    assert still["status"] == "draft"
    assert await app.state.services.dispatcher.run_once() == 0
    assert len(receiver.requests) == 1
    user = await register_user(client)
    as_user = await client.post(f"{OWN_EVENTS}/{event['eventId']}/redeliver", headers=user.headers)
    assert as_user.status_code == 403
