"""A refund's `expectedAvailableAmount` (as KakaoPay's `cancel_available_amount`): when what is
left to refund is not exactly that, nothing is refunded and the answer is 409
`AVAILABLE_AMOUNT_MISMATCH` with `availableAmount`, so a client that retries a refund without an
Idempotency-Key (its answer was lost) cannot refund twice, however the retries overlap.

What is left is the captured amount less every refund, those still awaiting the gateway
included. The payment's status is checked first, then the guard, then the amount rules."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.models import refund as refund_store
from payments_api.services.idempotency import fingerprint
from payments_api.services.refunds import RefundAsked
from tests.fixtures.payments import (
    Shop,
    assert_money_agrees,
    authorize,
    capture,
    documents,
    ledger_of,
    open_shop,
    open_shop_and_pay,
    read,
    sandbox_charge,
    sandbox_ledger,
    with_idempotency_key,
)
from tests.fixtures.races import PushedSubdocumentStoredAsString, meet_at, nx_gap

REASON = "Customer returned the item"
RETRIES = 5
BLIND_RETRY = {"amount": 3_000, "reason": REASON, "expectedAvailableAmount": 10_000}
"""A refund of 3000 of a 10000 payment, sent by a client that saw nothing refunded yet."""

Twin = tuple[FastAPI, httpx.AsyncClient]


async def post_refund(
    client: httpx.AsyncClient, headers: dict[str, str], payment_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"/api/v1/payments/{payment_id}/refund", json=body, headers=headers)


async def listed_refunds(
    client: httpx.AsyncClient, headers: dict[str, str], payment_id: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/payments/{payment_id}/refunds", headers=headers)
    assert response.status_code == 200, response.text
    refunds: list[dict[str, Any]] = response.json()["refunds"]
    return refunds


def assert_mismatch(response: httpx.Response, available: int) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "AVAILABLE_AMOUNT_MISMATCH"
    assert body["availableAmount"] == available


async def assert_unchanged(
    client: httpx.AsyncClient,
    app: FastAPI,
    shop: Shop,
    before: dict[str, Any],
    gateway_refund_requests: int,
) -> None:
    """A refused refund wrote nothing: the payment, its refunds (none left behind, not even a
    pending or failed one), its ledger and the gateway are as they were."""
    payment_id = before["paymentId"]
    current = await read(client, shop.merchant.headers, payment_id)
    assert (current["status"], current["refundedAmount"]) == (
        before["status"],
        before["refundedAmount"],
    )
    listed = await listed_refunds(client, shop.merchant.headers, payment_id)
    assert {r["status"] for r in listed} <= {"succeeded"}, listed
    assert sum(r["amount"] for r in listed) == before["refundedAmount"]
    stored = await documents(app, "refunds", paymentId=payment_id)
    assert sorted(r["_id"] for r in stored) == sorted(r["refundId"] for r in listed)
    assert sandbox_ledger(app).refund_requests == gateway_refund_requests
    assert Counter(r["type"] for r in await ledger_of(app, payment_id)) == Counter(
        {"payment": 1, "refund": len(listed)}
    )
    await assert_money_agrees(app, current)


# --- one request ----------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [3_000, None], ids=["part", "all-left"])
async def test_the_right_expected_amount_refunds(
    client: httpx.AsyncClient, app: FastAPI, amount: int | None
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    body: dict[str, Any] = {"reason": REASON, "expectedAvailableAmount": 10_000}
    if amount is not None:
        body["amount"] = amount

    response = await post_refund(client, shop.merchant.headers, payment["paymentId"], body)

    assert response.status_code == 200, response.text
    refunded, asked = response.json()["refund"], amount or 10_000
    assert (refunded["amount"], refunded["status"]) == (asked, "succeeded")
    current = await read(client, shop.merchant.headers, payment["paymentId"])
    assert current["refundedAmount"] == asked
    assert sandbox_charge(app, payment["paymentId"]).refunds == {refunded["refundId"]: asked}
    await assert_money_agrees(app, current)


@pytest.mark.parametrize(
    ("expected", "amount"),
    [(9_999, 3_000), (10_001, 3_000), (0, 3_000), (5_000, None), (5_000, 20_000)],
    ids=["below", "above", "zero", "all-left", "amount-too-large-too"],
)
async def test_a_wrong_expected_amount_refunds_nothing(
    client: httpx.AsyncClient, app: FastAPI, expected: int, amount: int | None
) -> None:
    """The guard comes before the amount rules: with a wrong guard, even an amount larger than
    what is left is the mismatch (409), not REFUND_EXCEEDS_AVAILABLE (422)."""
    shop, payment = await open_shop_and_pay(client, 10_000)
    body: dict[str, Any] = {"reason": REASON, "expectedAvailableAmount": expected}
    if amount is not None:
        body["amount"] = amount

    response = await post_refund(client, shop.merchant.headers, payment["paymentId"], body)

    assert_mismatch(response, 10_000)
    await assert_unchanged(client, app, shop, payment, gateway_refund_requests=0)


async def test_a_right_expected_amount_keeps_the_amount_rules(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    body = {"amount": 10_001, "reason": REASON, "expectedAvailableAmount": 10_000}

    response = await post_refund(client, shop.merchant.headers, payment["paymentId"], body)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "REFUND_EXCEEDS_AVAILABLE"
    await assert_unchanged(client, app, shop, payment, gateway_refund_requests=0)


async def test_the_guard_counts_what_was_refunded_before(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    first = await post_refund(client, shop.merchant.headers, payment_id, BLIND_RETRY)
    assert first.status_code == 200, first.text
    before = await read(client, shop.merchant.headers, payment_id)

    stale = await post_refund(
        client, shop.merchant.headers, payment_id, {**BLIND_RETRY, "amount": 1_000}
    )
    assert_mismatch(stale, 7_000)
    await assert_unchanged(client, app, shop, before, gateway_refund_requests=1)

    fresh = await post_refund(
        client, shop.merchant.headers, payment_id, {**BLIND_RETRY, "expectedAvailableAmount": 7_000}
    )
    assert fresh.status_code == 200, fresh.text
    current = await read(client, shop.merchant.headers, payment_id)
    assert current["refundedAmount"] == 6_000
    await assert_money_agrees(app, current)


@pytest.mark.parametrize("expected", [0, 10_000], ids=["nothing-left", "retry-of-a-full-refund"])
async def test_the_status_is_checked_before_the_guard(
    client: httpx.AsyncClient, app: FastAPI, expected: int
) -> None:
    """A fully refunded payment is not refundable, whatever the guard says: the true 0 left, or
    the 10000 a blind retry of the full refund still carries."""
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    everything = {"reason": REASON, "expectedAvailableAmount": 10_000}
    assert (
        await post_refund(client, shop.merchant.headers, payment_id, everything)
    ).status_code == 200
    refunded = await read(client, shop.merchant.headers, payment_id)
    assert refunded["status"] == "refunded"

    response = await post_refund(
        client,
        shop.merchant.headers,
        payment_id,
        {"reason": REASON, "expectedAvailableAmount": expected},
    )

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "PAYMENT_NOT_REFUNDABLE"
    await assert_unchanged(client, app, shop, refunded, gateway_refund_requests=1)


async def test_an_authorization_is_not_refundable_whatever_the_guard(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 10_000)

    response = await post_refund(
        client,
        shop.merchant.headers,
        payment["paymentId"],
        {"reason": REASON, "expectedAvailableAmount": 10_000},
    )

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "PAYMENT_NOT_REFUNDABLE"
    assert await documents(app, "refunds", paymentId=payment["paymentId"]) == []
    assert sandbox_ledger(app).refund_requests == 0


@pytest.mark.parametrize("value", [-1, 1.5, 1000.0, "10", True, 10**15 + 1], ids=repr)
async def test_an_expected_amount_that_is_not_a_non_negative_integer_is_a_422(
    client: httpx.AsyncClient, app: FastAPI, value: Any
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)

    response = await post_refund(
        client,
        shop.merchant.headers,
        payment["paymentId"],
        {"amount": 1_000, "reason": REASON, "expectedAvailableAmount": value},
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "VALIDATION_ERROR"
    assert {d["field"] for d in response.json()["details"]} == {"expectedAvailableAmount"}
    await assert_unchanged(client, app, shop, payment, gateway_refund_requests=0)


async def test_on_a_partly_captured_payment_the_guard_is_the_captured_amount_less_refunds(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop = await open_shop(client)
    payment_id = (await authorize(client, shop.user, shop.merchant.merchant_id, 30_000))[
        "paymentId"
    ]
    assert (await capture(client, shop.merchant.headers, payment_id, 20_000)).status_code == 200
    captured = await read(client, shop.merchant.headers, payment_id)

    authorized = await post_refund(
        client,
        shop.merchant.headers,
        payment_id,
        {"amount": 5_000, "reason": REASON, "expectedAvailableAmount": 30_000},
    )
    assert_mismatch(authorized, 20_000)
    await assert_unchanged(client, app, shop, captured, gateway_refund_requests=0)

    part = await post_refund(
        client,
        shop.merchant.headers,
        payment_id,
        {"amount": 5_000, "reason": REASON, "expectedAvailableAmount": 20_000},
    )
    assert part.status_code == 200, part.text
    assert_mismatch(
        await post_refund(
            client,
            shop.merchant.headers,
            payment_id,
            {"reason": REASON, "expectedAvailableAmount": 20_000},
        ),
        15_000,
    )
    rest = await post_refund(
        client,
        shop.merchant.headers,
        payment_id,
        {"reason": REASON, "expectedAvailableAmount": 15_000},
    )
    assert rest.status_code == 200, rest.text
    assert rest.json()["refund"]["amount"] == 15_000
    current = await read(client, shop.merchant.headers, payment_id)
    assert (current["status"], current["refundedAmount"]) == ("refunded", 20_000)
    assert sandbox_ledger(app).refund_requests == 2
    await assert_money_agrees(app, current)


# --- the blind retry ------------------------------------------------------------------------


async def test_a_blind_retry_after_the_refund_went_through_refunds_nothing(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]

    first = await post_refund(client, shop.merchant.headers, payment_id, BLIND_RETRY)
    after_first = await read(client, shop.merchant.headers, payment_id)
    again = await post_refund(client, shop.merchant.headers, payment_id, BLIND_RETRY)

    assert first.status_code == 200, first.text
    assert_mismatch(again, 7_000)
    assert after_first["refundedAmount"] == 3_000
    await assert_unchanged(client, app, shop, after_first, gateway_refund_requests=1)
    listed = await listed_refunds(client, shop.merchant.headers, payment_id)
    assert [r["refundId"] for r in listed] == [first.json()["refund"]["refundId"]]


def assert_refunded_once(responses: list[httpx.Response]) -> None:
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 1, 409: len(responses) - 1}, [r.text for r in responses]
    for response in responses:
        if response.status_code == 409:
            assert_mismatch(response, 7_000)


async def assert_one_refund_of_3000(
    client: httpx.AsyncClient, app: FastAPI, shop: Shop, payment_id: str
) -> None:
    current = await read(client, shop.merchant.headers, payment_id)
    assert (current["status"], current["refundedAmount"]) == ("partially_refunded", 3_000)
    assert len(await listed_refunds(client, shop.merchant.headers, payment_id)) == 1
    assert len(await documents(app, "refunds", paymentId=payment_id)) == 1  # losers' deleted
    assert sandbox_ledger(app).refund_requests == 1  # no loser reached the gateway
    assert sum(sandbox_charge(app, payment_id).refunds.values()) == 3_000
    await assert_money_agrees(app, current)


@pytest.mark.race
@nx_gap(PushedSubdocumentStoredAsString)
async def test_concurrent_blind_retries_refund_once(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every retry reads the payment and passes the early check (nothing refunded yet) before
    any inserts its refund (`meet_at`): the reservation's compare-and-set is what decides."""
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    meet_at(refund_store, "insert", RETRIES, monkeypatch)

    responses = await asyncio.gather(
        *(
            post_refund(client, shop.merchant.headers, payment_id, BLIND_RETRY)
            for _ in range(RETRIES)
        )
    )

    assert_refunded_once(list(responses))
    await assert_one_refund_of_3000(client, app, shop, payment_id)


@pytest.mark.race
@nx_gap(PushedSubdocumentStoredAsString)
async def test_blind_retries_on_two_apps_refund_once(
    client: httpx.AsyncClient, app: FastAPI, twin: Twin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard is in the database, not in a process: a retry through another server process
    is refused the same way."""
    _, other = twin
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    meet_at(refund_store, "insert", 2, monkeypatch)

    responses = await asyncio.gather(
        post_refund(client, shop.merchant.headers, payment_id, BLIND_RETRY),
        post_refund(other, shop.merchant.headers, payment_id, BLIND_RETRY),
    )

    assert_refunded_once(list(responses))
    await assert_one_refund_of_3000(client, app, shop, payment_id)


# --- with an Idempotency-Key ----------------------------------------------------------------


@pytest.mark.parametrize("guarded_first", [True, False], ids=["guarded-first", "plain-first"])
async def test_the_same_key_with_and_without_the_guard_is_a_422(
    client: httpx.AsyncClient, app: FastAPI, guarded_first: bool
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    headers = with_idempotency_key(shop.merchant.headers)
    guarded, plain = BLIND_RETRY, {"amount": 3_000, "reason": REASON}
    first, second = (guarded, plain) if guarded_first else (plain, guarded)
    assert (await post_refund(client, headers, payment_id, first)).status_code == 200

    response = await post_refund(client, headers, payment_id, second)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "IDEMPOTENCY_KEY_REUSED"
    current = await read(client, shop.merchant.headers, payment_id)
    assert current["refundedAmount"] == 3_000
    assert sandbox_ledger(app).refund_requests == 1


async def test_another_expected_amount_under_the_same_key_is_a_422(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    headers = with_idempotency_key(shop.merchant.headers)
    assert (await post_refund(client, headers, payment_id, BLIND_RETRY)).status_code == 200

    response = await post_refund(
        client, headers, payment_id, {**BLIND_RETRY, "expectedAvailableAmount": 7_000}
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "IDEMPOTENCY_KEY_REUSED"


async def test_a_keyed_retry_of_a_guarded_refund_replays_it(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """The key answers first: the refund it made, not the mismatch its guard now would be."""
    shop, payment = await open_shop_and_pay(client, 10_000)
    payment_id = payment["paymentId"]
    headers = with_idempotency_key(shop.merchant.headers)
    first = await post_refund(client, headers, payment_id, BLIND_RETRY)
    assert first.status_code == 200, first.text

    again = await post_refund(client, headers, payment_id, BLIND_RETRY)

    assert again.status_code == 200, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["refund"] == first.json()["refund"]
    assert sandbox_ledger(app).refund_requests == 1


def test_a_body_without_the_guard_keeps_the_digest_it_had() -> None:
    """Keys stored before the guard existed still match the same body sent again."""
    plain = RefundAsked(3_000, REASON)
    guarded = RefundAsked(3_000, REASON, expected_available=0)

    assert plain.fingerprint("pay_1") == fingerprint(
        {"paymentId": "pay_1", "amount": 3_000, "reason": REASON}
    )
    assert guarded.fingerprint("pay_1") != plain.fingerprint("pay_1")
