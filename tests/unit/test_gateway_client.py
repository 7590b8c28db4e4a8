"""What the gateway client makes of a connection that breaks: only a connection never made is
`unreachable` (so "nothing was charged"); a dropped one is asked once more, and without an
answer then it is `unknown`, never a "no"."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from payments_api.config.settings import Settings
from payments_api.services.gateway import GatewayClient, GatewayResult

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


AUTHORIZED = {**APPROVED, "status": "authorized", "authorizedAmount": 1_000, "capturedAmount": 0}
CAPTURED = {**APPROVED, "authorizedAmount": 1_000, "capturedAmount": 600, "captureId": "cap_1"}


def answering(status: int, body: dict[str, object]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return answer


async def capture(settings: Settings, transport: httpx.MockTransport) -> GatewayResult:
    client = GatewayClient(settings, transport)
    try:
        return await client.capture(payment_id="pay_1", capture_id="cap_1", amount=600)
    finally:
        await client.aclose()


async def test_an_authorization_is_asked_for_without_capture_and_read_as_authorized(
    settings: Settings,
) -> None:
    sent: list[dict[str, object]] = []

    def authorizes(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=AUTHORIZED)

    client = GatewayClient(settings, httpx.MockTransport(authorizes))
    try:
        result = await client.charge(
            payment_id="pay_1", amount=1_000, currency="KRW", payment_method="card", capture=False
        )
    finally:
        await client.aclose()

    assert (result.outcome, result.transaction_id) == ("authorized", "gtx_1")
    assert sent[0]["capture"] is False


async def test_a_charge_asks_for_capture_by_default(settings: Settings) -> None:
    sent: list[dict[str, object]] = []

    def charges(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=APPROVED)

    assert await charge(settings, httpx.MockTransport(charges)) == "approved"
    assert sent[0].get("capture", True) is True


@pytest.mark.parametrize(
    ("method", "status"),
    [("lookup", 200), ("reverse", 409)],
)
async def test_a_lookup_or_a_refused_reversal_of_an_authorization_reads_as_authorized(
    settings: Settings, method: str, status: int
) -> None:
    transport, _ = scripted(answering(status, {**AUTHORIZED, "error": "ALREADY_PROCESSED"}))
    client = GatewayClient(settings, transport)
    try:
        result = await getattr(client, method)("pay_1")
    finally:
        await client.aclose()

    assert (result.outcome, result.transaction_id) == ("authorized", "gtx_1")


async def test_a_capture_taken_is_approved(settings: Settings) -> None:
    sent: list[dict[str, object]] = []

    def captures(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=CAPTURED)

    transport, seen = scripted(captures)

    result = await capture(settings, transport)

    assert (result.outcome, result.transaction_id) == ("approved", "gtx_1")
    assert result.data is not None
    assert result.data["capturedAmount"] == 600
    assert seen == ["POST /v1/charges/pay_1/capture"]
    assert sent == [{"captureId": "cap_1", "amount": 600}]


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (409, {"error": "ALREADY_CAPTURED", "message": "taken", **CAPTURED, "captureId": "cap_0"}),
        (
            409,
            {"error": "NOT_CAPTURABLE", "message": "voided", **AUTHORIZED, "status": "cancelled"},
        ),
        (422, {"error": "CAPTURE_EXCEEDS_AUTHORIZED", "message": "too much"}),
        (404, {"error": "CHARGE_NOT_FOUND", "message": "nothing held"}),
    ],
)
async def test_a_refused_capture_is_declined_with_the_gateways_code(
    settings: Settings, status: int, body: dict[str, object]
) -> None:
    transport, _ = scripted(answering(status, body))

    result = await capture(settings, transport)

    assert result.outcome == "declined"
    assert (result.failure_code, result.failure_message) == (body["error"], body["message"])


@pytest.mark.parametrize(
    "answer",
    [
        answering(503, {"error": "PROCESSOR_UNAVAILABLE"}),
        answering(200, {"status": "authorized"}),
        lambda request: httpx.Response(200, content=b"<html>"),
        dropped,
    ],
    ids=["5xx", "200-not-approved", "broken-body", "dropped-twice"],
)
async def test_a_capture_without_a_clear_answer_is_unknown(
    settings: Settings, answer: Callable[[httpx.Request], httpx.Response]
) -> None:
    transport, _ = scripted(answer, answer)

    assert (await capture(settings, transport)).outcome == "unknown"


async def test_a_capture_timing_out_is_unknown(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(gateway_timeout_seconds=0.1)

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1)
        return httpx.Response(200, json=CAPTURED)

    result = await capture(settings, httpx.MockTransport(slow))

    assert result.outcome == "unknown"


async def test_a_capture_that_cannot_connect_is_unreachable(settings: Settings) -> None:
    transport, seen = scripted(refused)

    assert (await capture(settings, transport)).outcome == "unreachable"
    assert len(seen) == 1
