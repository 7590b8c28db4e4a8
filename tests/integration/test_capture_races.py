"""Capture, cancel and expiry racing on one authorization, for real (on the interleaving stand-in
and over the wire, one app or two): exactly one wins each race, the loser is refused before it
reaches the gateway, and the payment, its ledger, its events and the gateway agree afterwards.

Every racer is held at the compare-and-set that begins its step (`meet_at`) until all of them
have passed the checks before it, so the guard of that one update is what decides."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from payments_api.models import authorization_steps
from payments_api.utils.clock import utcnow
from tests.fixtures.payments import (
    Shop,
    assert_money_agrees,
    authorize,
    capture,
    events_of,
    open_shop,
    read,
    sandbox_ledger,
    slow_gateway,
)
from tests.fixtures.races import meet_at
from tests.fixtures.reconciliation import Clock, reconciler_for

pytestmark = pytest.mark.race

Twin = tuple[FastAPI, httpx.AsyncClient]
RACES = 8


async def void(
    client: httpx.AsyncClient, headers: dict[str, str], payment_id: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/payments/{payment_id}/cancel", json={"reason": "Racing"}, headers=headers
    )


async def assert_one_winner(
    client: httpx.AsyncClient,
    app: FastAPI,
    shop: Shop,
    payment_id: str,
    captured: httpx.Response,
    voided: httpx.Response,
) -> None:
    """Exactly one of the two won, the other was refused with its 409, and the payment shows
    the winner's outcome with one event for it."""
    assert (captured.status_code == 200) != (voided.status_code == 200), (
        captured.text,
        voided.text,
    )
    loser = voided if captured.status_code == 200 else captured
    assert loser.status_code == 409, loser.text
    assert loser.json()["error"] in ("PAYMENT_NOT_CAPTURABLE", "PAYMENT_NOT_CANCELLABLE")
    current = await read(client, shop.user.headers, payment_id)
    if captured.status_code == 200:
        assert (current["status"], current["capturedAmount"]) == ("completed", 6_000)
        assert len(await events_of(app, payment_id, "payment.cancelled")) == 0
    else:
        assert (current["status"], current["capturedAmount"]) == ("cancelled", 0)
        assert len(await events_of(app, payment_id, "payment.completed")) == 0
    await assert_money_agrees(app, current)


async def test_captures_racing_cancels_have_one_winner_each(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    payments = [
        await authorize(client, shop.user, shop.merchant.merchant_id, 10_000) for _ in range(RACES)
    ]
    voiders = [shop.user.headers, shop.merchant.headers, shop.admin]
    slow_gateway(app)
    meet_at(authorization_steps, "begin", 2 * RACES, monkeypatch)

    async def race(n: int, payment_id: str) -> tuple[httpx.Response, httpx.Response]:
        capturing = capture(client, shop.merchant.headers, payment_id, 6_000)
        voiding = void(client, voiders[n % len(voiders)], payment_id)
        if n % 2:
            voided, captured = await asyncio.gather(voiding, capturing)
        else:
            captured, voided = await asyncio.gather(capturing, voiding)
        return captured, voided

    answers = await asyncio.gather(*(race(n, p["paymentId"]) for n, p in enumerate(payments)))

    for payment, (captured, voided) in zip(payments, answers, strict=True):
        await assert_one_winner(client, app, shop, payment["paymentId"], captured, voided)
    gateway = sandbox_ledger(app)
    assert gateway.capture_requests + gateway.cancel_requests == RACES  # no loser asked
    spent = sum(6_000 for captured, _ in answers if captured.status_code == 200)
    [spending] = [
        doc
        async for doc in app.state.services.database["daily_spending"].find(
            {"userId": shop.user.user_id}
        )
    ]
    assert spending["spent"] == spent


async def test_a_capture_on_one_app_and_a_void_on_the_other_have_one_winner(
    client: httpx.AsyncClient, app: FastAPI, twin: Twin, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, other = twin
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 10_000)
    slow_gateway(app)
    meet_at(authorization_steps, "begin", 2, monkeypatch)

    captured, voided = await asyncio.gather(
        capture(client, shop.merchant.headers, payment["paymentId"], 6_000),
        void(other, shop.merchant.headers, payment["paymentId"]),
    )

    await assert_one_winner(client, app, shop, payment["paymentId"], captured, voided)


@pytest.mark.parametrize("first", ["capture", "expiry"])
async def test_a_capture_racing_the_expiry_has_one_winner(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    shop = await open_shop(client)
    payment = await authorize(client, shop.user, shop.merchant.merchant_id, 10_000)
    payment_id = payment["paymentId"]
    ttl = timedelta(seconds=app.state.settings.authorization_ttl_seconds)
    # The worker's clock is past the expiry; the capture's (the real one) is not.
    expiry = reconciler_for(app, Clock(utcnow() + ttl + timedelta(seconds=1)))
    slow_gateway(app)
    meet_at(authorization_steps, "begin", 2, monkeypatch)

    steps = {
        "capture": lambda: capture(client, shop.merchant.headers, payment_id, 6_000),
        "expiry": expiry.run_once,
    }
    order = [first, *(name for name in steps if name != first)]
    results = dict(zip(order, await asyncio.gather(*(steps[n]() for n in order)), strict=True))

    captured = results["capture"]
    assert isinstance(captured, httpx.Response)
    current = await read(client, shop.user.headers, payment_id)
    if captured.status_code == 200:
        assert current["status"] == "completed"
    else:
        assert captured.status_code == 409, captured.text
        assert (current["status"], current["cancelReason"]) == (
            "cancelled",
            "authorization_expired",
        )
    gateway = sandbox_ledger(app)
    assert gateway.capture_requests + gateway.cancel_requests == 1
    await assert_money_agrees(app, current)
