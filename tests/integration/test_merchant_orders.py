"""`merchantOrderId` and `metadata`: validated, stored as given and shown wherever the payment
(or refund) is; part of the Idempotency-Key's body; and one order, one payment that has not
failed, per merchant (409 `DUPLICATE_ORDER_ID`), a failure leaving the order free again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.settings import Settings
from tests.fixtures.apps import running
from tests.fixtures.factories import create_merchant, register_user
from tests.fixtures.payments import (
    PAYMENTS,
    Shop,
    cancel,
    documents,
    new_key,
    open_shop,
    payment_body,
    post_payment,
    read,
    sandbox_ledger,
    stats_of,
    user_and_merchant,
)
from tests.fixtures.reconciliation import Clock, reconcile_after, reconciler_for, stored_payment
from tests.fixtures.servers import free_port

METADATA = {
    "cartId": "c-42",
    "note": "문 앞에 놓아 주세요",
    "a.b": "dotted",
    "$x": "dollar",
    "e": "",
}
"""Keys and values a client may send, stored and returned exactly as given."""


def order_body(shop: Shop, order_id: str | None, amount: int = 10_000, **fields: Any) -> Any:
    extra = {} if order_id is None else {"merchantOrderId": order_id}
    return payment_body(shop.merchant.merchant_id, amount, **extra, **fields)


async def create(
    client: httpx.AsyncClient, shop: Shop, order_id: str | None, amount: int = 10_000, **fields: Any
) -> httpx.Response:
    return await post_payment(client, shop.user, order_body(shop, order_id, amount, **fields))


async def refund_with(
    client: httpx.AsyncClient, shop: Shop, payment_id: str, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return await client.post(
        f"{PAYMENTS}/{payment_id}/refund", json=body, headers={**shop.merchant.headers, **headers}
    )


def error_fields(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    return {detail["field"] for detail in body["details"]}


# --- stored and shown -----------------------------------------------------------------------


async def test_the_order_id_and_metadata_are_shown_wherever_the_payment_is(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    created = await create(client, shop, "order-1001", metadata=METADATA)
    assert created.status_code == 201, created.text
    payment = created.json()["payment"]
    payment_id = payment["paymentId"]
    readers = shop.user.user_id, shop.merchant.merchant_id
    await app.state.services.payments.cache.forget(payment_id, *readers)  # a read fills it

    views = [
        payment,
        await read(client, shop.user.headers, payment_id),  # from the database
        await read(client, shop.user.headers, payment_id),  # from the cache
        await read(client, shop.merchant.headers, payment_id),
        (await client.get(PAYMENTS, headers=shop.user.headers)).json()["payments"][0],
        (await client.get("/api/v1/merchants/me/payments", headers=shop.merchant.headers)).json()[
            "payments"
        ][0],
        *[
            event["data"]["payment"]
            for event in await documents(app, "events", paymentId=payment_id)
        ],
    ]

    assert len(views) == 7
    for view in views:
        assert view["paymentId"] == payment_id
        assert view["merchantOrderId"] == "order-1001"
        assert view["metadata"] == METADATA


async def test_without_them_the_order_id_is_null_and_the_metadata_empty(
    client: httpx.AsyncClient,
) -> None:
    shop = await open_shop(client)

    created = await create(client, shop, None)
    second = await create(client, shop, None)  # no order id: nothing to be unique about

    assert created.status_code == second.status_code == 201, (created.text, second.text)
    payment = created.json()["payment"]
    assert payment["merchantOrderId"] is None
    assert payment["metadata"] == {}
    assert (await read(client, shop.user.headers, payment["paymentId"]))["metadata"] == {}


async def test_the_largest_metadata_and_order_id_the_rules_allow_are_taken(
    client: httpx.AsyncClient,
) -> None:
    shop = await open_shop(client)
    largest = {f"{n:02d}".ljust(40, "k"): "v" * 500 for n in range(20)}
    order_id = "".join(chr(c) for c in range(0x20, 0x7F))[:64]

    created = await create(client, shop, order_id, metadata=largest)

    assert created.status_code == 201, created.text
    assert created.json()["payment"]["metadata"] == largest
    assert created.json()["payment"]["merchantOrderId"] == order_id


async def test_a_refund_keeps_its_metadata_in_its_answer_and_in_the_list(
    client: httpx.AsyncClient,
) -> None:
    shop = await open_shop(client)
    payment_id = (await create(client, shop, "order-r1")).json()["payment"]["paymentId"]
    asked = {"amount": 3_000, "reason": "Broken lid", "metadata": {"ticket": "CS-7"}}

    refunded = await refund_with(client, shop, payment_id, asked)
    plain = await refund_with(client, shop, payment_id, {"amount": 1_000, "reason": "Late"})
    listed = await client.get(f"{PAYMENTS}/{payment_id}/refunds", headers=shop.merchant.headers)

    assert refunded.status_code == 200, refunded.text
    assert refunded.json()["refund"]["metadata"] == {"ticket": "CS-7"}
    assert plain.json()["refund"]["metadata"] == {}
    assert [r["metadata"] for r in listed.json()["refunds"]] == [{"ticket": "CS-7"}, {}]


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order_id",
    ["", "x" * 65, "주문-1", "tab\there", "del\x7f", "new\nline", 1001, True, ["o-1"]],
    ids=["empty", "65-chars", "non-ascii", "tab", "del", "newline", "number", "bool", "array"],
)
async def test_a_bad_order_id_is_a_422_naming_it(client: httpx.AsyncClient, order_id: Any) -> None:
    shop = await open_shop(client)

    response = await create(client, shop, order_id)

    assert error_fields(response) == {"merchantOrderId"}
    assert await documents_of(client, shop) == []


BAD_METADATA = {
    "array": ["a"],
    "string": "a=b",
    "number-value": {"count": 1},
    "bool-value": {"gift": True},
    "null-value": {"note": None},
    "nested": {"address": {"city": "Seoul"}},
    "21-keys": {f"k{n}": "v" for n in range(21)},
    "empty-key": {"": "v"},
    "41-char-key": {"k" * 41: "v"},
    "501-char-value": {"note": "v" * 501},
    "nul-in-key": {"gift\x00": "v"},
    "null": None,
}


@pytest.mark.parametrize("metadata", BAD_METADATA.values(), ids=BAD_METADATA.keys())
async def test_bad_metadata_is_a_422_naming_it_on_payments_and_refunds(
    client: httpx.AsyncClient, app: FastAPI, metadata: Any
) -> None:
    shop = await open_shop(client)
    payment_id = (await create(client, shop, None)).json()["payment"]["paymentId"]

    created = await create(client, shop, None, metadata=metadata)
    refunded = await refund_with(client, shop, payment_id, {"reason": "x", "metadata": metadata})

    assert error_fields(created) == {"metadata"}
    assert error_fields(refunded) == {"metadata"}
    assert len(await documents(app, "payments", userId=shop.user.user_id)) == 1
    assert await documents(app, "refunds", paymentId=payment_id) == []


async def documents_of(client: httpx.AsyncClient, shop: Shop) -> list[Any]:
    response = await client.get(PAYMENTS, headers=shop.user.headers)
    payments: list[Any] = response.json()["payments"]
    return payments


# --- idempotency ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "again"),
    [
        ({"merchantOrderId": "o-1"}, {"merchantOrderId": "o-2"}),
        ({"merchantOrderId": "o-1"}, {}),
        ({"metadata": {"k": "v"}}, {"metadata": {"k": "w"}}),
        ({}, {"metadata": {"k": "v"}}),
    ],
    ids=["other-order", "order-left-out", "other-metadata", "metadata-added"],
)
async def test_one_key_with_another_order_or_metadata_is_refused(
    client: httpx.AsyncClient, app: FastAPI, first: dict[str, Any], again: dict[str, Any]
) -> None:
    shop = await open_shop(client)
    key = new_key()
    made = await post_payment(client, shop.user, order_body(shop, None, **first), key)
    assert made.status_code == 201, made.text

    reused = await post_payment(client, shop.user, order_body(shop, None, **again), key)

    assert reused.status_code == 422, reused.text
    assert reused.json()["error"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(await documents(app, "payments", userId=shop.user.user_id)) == 1


async def test_one_key_with_the_same_order_replays_instead_of_a_conflict(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    key = new_key()
    body = order_body(shop, "order-7", metadata={"k": "v"})
    first = await post_payment(client, shop.user, body, key)
    await app.state.services.redis.flushdb()  # Redis forgot the key: the database answers

    replays = [await post_payment(client, shop.user, body, key) for _ in range(2)]

    assert first.status_code == 201, first.text
    for replay in replays:
        assert replay.status_code == 200, replay.text
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["payment"]["paymentId"] == first.json()["payment"]["paymentId"]
        assert replay.json()["payment"]["merchantOrderId"] == "order-7"
    assert sandbox_ledger(app).charges_made == 1


async def test_a_refund_key_with_other_metadata_is_refused(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    payment_id = (await create(client, shop, None)).json()["payment"]["paymentId"]
    key = new_key()
    body = {"amount": 1_000, "reason": "Late", "metadata": {"ticket": "CS-1"}}

    first = await refund_with(client, shop, payment_id, body, **{"Idempotency-Key": key})
    replay = await refund_with(client, shop, payment_id, body, **{"Idempotency-Key": key})
    other = {**body, "metadata": {"ticket": "CS-2"}}
    reused = await refund_with(client, shop, payment_id, other, **{"Idempotency-Key": key})

    assert first.status_code == replay.status_code == 200, (first.text, replay.text)
    assert replay.json()["refund"]["refundId"] == first.json()["refund"]["refundId"]
    assert reused.status_code == 422
    assert reused.json()["error"] == "IDEMPOTENCY_KEY_REUSED"


# --- one order, one payment -----------------------------------------------------------------


async def test_a_second_payment_for_an_order_is_409_and_leaves_nothing_behind(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    first = await create(client, shop, "order-9", 10_000)
    assert first.status_code == 201, first.text
    events_before = len(await documents(app, "events"))

    again = await create(client, shop, "order-9", 20_000)
    by_another_user = await post_payment(
        client, await register_user(client), order_body(shop, "order-9", 30_000)
    )

    for response in (again, by_another_user):
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "DUPLICATE_ORDER_ID"
        assert body["message"]
        assert "payment" not in body
    assert [p["_id"] for p in await documents(app, "payments", merchantOrderId="order-9")] == [
        first.json()["payment"]["paymentId"]
    ]
    assert sandbox_ledger(app).charges_made == 1
    assert (await stats_of(client, shop.user))["todaySpent"] == 10_000
    assert len(await documents(app, "events")) == events_before
    # The key of a refused request made nothing: it is free to be used again.
    retried = await create(client, shop, "order-10", 20_000)
    assert retried.status_code == 201, retried.text


async def test_an_order_id_is_the_merchants_own(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    other = await create_merchant(client)
    assert (await create(client, shop, "order-1")).status_code == 201

    elsewhere = await post_payment(
        client, shop.user, payment_body(other.merchant_id, 10_000, merchantOrderId="order-1")
    )
    another_order = await create(client, shop, "order-2")

    assert elsewhere.status_code == 201, elsewhere.text
    assert another_order.status_code == 201, another_order.text


async def test_a_declined_payment_leaves_its_order_free_for_another_try(
    client: httpx.AsyncClient,
) -> None:
    shop = await open_shop(client)

    declined = await create(client, shop, "order-402", 10_402)
    declined_again = await create(client, shop, "order-402", 20_402)
    approved = await create(client, shop, "order-402", 10_000)
    after_approval = await create(client, shop, "order-402", 10_000)

    assert declined.status_code == declined_again.status_code == 402
    assert declined.json()["payment"]["merchantOrderId"] == "order-402"
    assert approved.status_code == 201, approved.text
    assert after_approval.status_code == 409
    history = await client.get(
        PAYMENTS, params={"merchantOrderId": "order-402"}, headers=shop.user.headers
    )
    assert [p["status"] for p in history.json()["payments"]] == ["completed", "failed", "failed"]


async def test_a_cancelled_payment_still_holds_its_order(client: httpx.AsyncClient) -> None:
    shop = await open_shop(client)
    payment = (await create(client, shop, "order-c")).json()["payment"]
    assert (await cancel(client, shop.user, payment["paymentId"])).status_code == 200

    again = await create(client, shop, "order-c")

    assert again.status_code == 409
    assert again.json()["error"] == "DUPLICATE_ORDER_ID"


async def test_an_unreachable_gateway_leaves_the_order_free(
    make_settings: Callable[..., Settings],
) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    async with running(make_settings(gateway_url=nobody_listens)) as (_, client):
        user, merchant = await user_and_merchant(client)
        body = payment_body(merchant.merchant_id, 10_000, merchantOrderId="order-u")

        first = await post_payment(client, user, body)
        second = await post_payment(client, user, body)

    assert first.status_code == second.status_code == 503
    assert second.json()["error"] == "GATEWAY_UNAVAILABLE"  # not DUPLICATE_ORDER_ID


async def test_a_payment_reconciliation_finds_never_charged_leaves_the_order_free(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    pending = await create(client, shop, "order-p", 10_503)  # 5xx: outcome unknown
    assert pending.status_code == 202, pending.text
    payment_id = pending.json()["payment"]["paymentId"]
    blocked = await create(client, shop, "order-p")
    assert blocked.status_code == 409  # a pending payment holds its order

    updated_at = (await stored_payment(app, payment_id))["updatedAt"]
    assert await reconciler_for(app, Clock(updated_at + reconcile_after(app))).run_once() == 1
    assert (await read(client, shop.user.headers, payment_id))["failureCode"] == "NOT_CHARGED"

    retried = await create(client, shop, "order-p")
    assert retried.status_code == 201, retried.text
