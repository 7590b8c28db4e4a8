"""What the gateway client makes of a connection that breaks: only a connection never made is
`unreachable` (so "nothing was charged"); a dropped one is asked once more, and without an
answer then it is `unknown`, never a "no"."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from payments_api.config.settings import Settings
from payments_api.services.gateway import GatewayClient

APPROVED = {"paymentId": "pay_1", "amount": 1_000, "status": "approved", "transactionId": "gtx_1"}


def scripted(
    *steps: Callable[[httpx.Request], httpx.Response],
) -> tuple[httpx.MockTransport, list[str]]:
    """A transport that plays `steps` in order, one per request (the gateway's side)."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return steps[len(seen) - 1](request)

    return httpx.MockTransport(handle), seen


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("connection closed", request=request)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def approved(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=APPROVED)


async def charge(settings: Settings, transport: httpx.MockTransport) -> str:
    client = GatewayClient(settings, transport)
    try:
        result = await client.charge(
            payment_id="pay_1", amount=1_000, currency="KRW", payment_method="card"
        )
    finally:
        await client.aclose()
    return result.outcome


async def test_a_dropped_connection_is_asked_again_and_its_answer_counts(
    settings: Settings,
) -> None:
    transport, seen = scripted(dropped, approved)
    assert await charge(settings, transport) == "approved"
    assert seen == ["POST /v1/charges", "POST /v1/charges"]


async def test_a_dropped_connection_then_a_refused_one_is_unknown_not_unreachable(
    settings: Settings,
) -> None:
    transport, seen = scripted(dropped, refused)
    assert await charge(settings, transport) == "unknown"
    assert len(seen) == 2


async def test_a_refused_connection_is_unreachable_and_asked_once(settings: Settings) -> None:
    transport, seen = scripted(refused)
    assert await charge(settings, transport) == "unreachable"
    assert seen == ["POST /v1/charges"]


async def test_a_transport_that_breaks_unexpectedly_is_unknown(settings: Settings) -> None:
    def torn_down(request: httpx.Request) -> httpx.Response:
        raise AttributeError("'NoneType' object has no attribute 'getpeername'")

    transport, _ = scripted(torn_down)
    assert await charge(settings, transport) == "unknown"
