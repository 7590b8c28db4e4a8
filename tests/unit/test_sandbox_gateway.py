"""The sandbox gateway's authorize / capture / void, driven over HTTP on its own ASGI app: an
authorization holds the money, one capture (all or a part, idempotent on its captureId) takes
it, a void lets it go, and what was captured bounds the refunds; and the gateway client reads
those answers as the payment service will."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from payments_api.config.settings import Settings
from payments_api.sandbox_gateway.app import create_sandbox_app
from payments_api.sandbox_gateway.ledger import SandboxLedger
from payments_api.services.gateway import GatewayClient

PAYMENT_ID = "pay_manual_1"
AUTHORIZED = 10_000


@dataclass
class Sandbox:
    client: httpx.AsyncClient
    ledger: SandboxLedger

    async def authorize(
        self, amount: int = AUTHORIZED, payment_id: str = PAYMENT_ID
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/charges", json={"paymentId": payment_id, "amount": amount, "capture": False}
        )

    async def capture(self, capture_id: str, amount: int) -> httpx.Response:
        return await self.client.post(
            f"/v1/charges/{PAYMENT_ID}/capture", json={"captureId": capture_id, "amount": amount}
        )

    async def lookup(self, payment_id: str = PAYMENT_ID) -> httpx.Response:
        return await self.client.get(f"/v1/charges/{payment_id}")

    async def post(self, action: str, json: dict[str, Any] | None = None) -> httpx.Response:
        return await self.client.post(f"/v1/charges/{PAYMENT_ID}/{action}", json=json)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    app = create_sandbox_app(timeout_seconds=0.5, reconcile_after_seconds=0.5)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield Sandbox(client, app.state.ledger)


async def test_an_authorization_is_held_not_charged_and_looks_up_as_authorized(
    sandbox: Sandbox,
) -> None:
    answer = await sandbox.authorize()

    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "authorized"
    assert body["transactionId"].startswith("gtx_")
    assert (body["amount"], body["authorizedAmount"], body["capturedAmount"]) == (
        AUTHORIZED,
    ) * 2 + (0,)
    assert body["captureId"] is None
    assert (await sandbox.lookup()).json() == body
    assert (sandbox.ledger.authorizations_made, sandbox.ledger.charges_made) == (1, 0)


async def test_an_automatic_charge_reads_as_authorized_and_captured_in_full(
    sandbox: Sandbox,
) -> None:
    answer = await sandbox.client.post(
        "/v1/charges", json={"paymentId": "pay_auto", "amount": 5_000}
    )

    body = answer.json()
    assert body["status"] == "approved"
    assert (body["authorizedAmount"], body["capturedAmount"], body["captureId"]) == (
        5_000,
        5_000,
        None,
    )
    assert (sandbox.ledger.charges_made, sandbox.ledger.authorizations_made) == (1, 0)


async def test_an_authorization_is_idempotent_on_its_payment_id(sandbox: Sandbox) -> None:
    first = (await sandbox.authorize()).json()

    again = await sandbox.authorize()
    as_a_charge = await sandbox.client.post(
        "/v1/charges", json={"paymentId": PAYMENT_ID, "amount": AUTHORIZED}
    )
    other_amount = await sandbox.authorize(AUTHORIZED + 1)

    assert (again.status_code, again.json()) == (200, first)
    assert as_a_charge.status_code == 409
    assert as_a_charge.json()["error"] == "IDEMPOTENCY_CONFLICT"
    assert other_amount.status_code == 409
    assert sandbox.ledger.authorizations_made == 1


async def test_a_partial_capture_takes_only_that_part(sandbox: Sandbox) -> None:
    authorized = (await sandbox.authorize()).json()

    answer = await sandbox.capture("cap_1", 7_000)

    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "approved"
    assert body["amount"] == 7_000
    assert body["authorizedAmount"] == AUTHORIZED
    assert body["capturedAmount"] == 7_000
    assert body["captureId"] == "cap_1"
    assert body["transactionId"] == authorized["transactionId"]
    assert (await sandbox.lookup()).json() == body
    assert (sandbox.ledger.captures_made, sandbox.ledger.charges_made) == (1, 0)


async def test_an_authorization_repeated_after_its_capture_is_no_conflict(
    sandbox: Sandbox,
) -> None:
    await sandbox.authorize()
    captured = (await sandbox.capture("cap_1", 7_000)).json()

    again = await sandbox.authorize()

    assert (again.status_code, again.json()) == (200, captured)


async def test_the_same_capture_again_answers_the_same_and_takes_nothing_more(
    sandbox: Sandbox,
) -> None:
    await sandbox.authorize()
    first = await sandbox.capture("cap_1", 7_000)

    again = await sandbox.capture("cap_1", 7_000)

    assert (again.status_code, again.json()) == (200, first.json())
    assert sandbox.ledger.captures_made == 1
    assert sandbox.ledger.capture_requests == 2


async def test_the_same_capture_id_with_another_amount_is_a_conflict(sandbox: Sandbox) -> None:
    await sandbox.authorize()
    await sandbox.capture("cap_1", 7_000)

    answer = await sandbox.capture("cap_1", 8_000)

    assert answer.status_code == 409
    assert answer.json()["error"] == "IDEMPOTENCY_CONFLICT"
    assert (await sandbox.lookup()).json()["capturedAmount"] == 7_000


async def test_a_second_capture_is_refused_with_the_first(sandbox: Sandbox) -> None:
    await sandbox.authorize()
    await sandbox.capture("cap_1", 7_000)

    answer = await sandbox.capture("cap_2", 1_000)

    assert answer.status_code == 409
    body = answer.json()
    assert body["error"] == "ALREADY_CAPTURED"
    assert (body["status"], body["captureId"], body["capturedAmount"]) == (
        "approved",
        "cap_1",
        7_000,
    )
    assert sandbox.ledger.captures_made == 1


async def test_an_automatic_charge_cannot_be_captured(sandbox: Sandbox) -> None:
    await sandbox.client.post("/v1/charges", json={"paymentId": PAYMENT_ID, "amount": 5_000})

    answer = await sandbox.capture("cap_1", 5_000)

    assert answer.status_code == 409
    assert answer.json()["error"] == "ALREADY_CAPTURED"
    assert sandbox.ledger.captures_made == 0


async def test_a_capture_above_the_authorized_amount_is_refused(sandbox: Sandbox) -> None:
    await sandbox.authorize()

    answer = await sandbox.capture("cap_1", AUTHORIZED + 1)

    assert answer.status_code == 422
    assert answer.json()["error"] == "CAPTURE_EXCEEDS_AUTHORIZED"
    assert answer.json()["authorizedAmount"] == AUTHORIZED
    assert (await sandbox.lookup()).json()["status"] == "authorized"
    assert sandbox.ledger.captures_made == 0


async def test_a_capture_of_nothing_held_is_not_found(sandbox: Sandbox) -> None:
    answer = await sandbox.capture("cap_1", 1_000)

    assert answer.status_code == 404
    assert answer.json()["error"] == "CHARGE_NOT_FOUND"
    assert sandbox.ledger.capture_requests == 1


async def test_a_void_lets_the_authorization_go_and_no_capture_follows(sandbox: Sandbox) -> None:
    await sandbox.authorize()

    voided = await sandbox.post("cancel")
    again = await sandbox.post("cancel")
    capture = await sandbox.capture("cap_1", 1_000)

    assert voided.status_code == 200
    assert (voided.json()["status"], voided.json()["capturedAmount"]) == ("cancelled", 0)
    assert (again.status_code, again.json()) == (200, voided.json())
    assert capture.status_code == 409
    assert capture.json()["error"] == "NOT_CAPTURABLE"
    assert capture.json()["status"] == "cancelled"
    assert sandbox.ledger.captures_made == 0


async def test_a_cancelled_capture_is_not_captured_again(sandbox: Sandbox) -> None:
    await sandbox.authorize()
    await sandbox.capture("cap_1", 7_000)
    assert (await sandbox.post("cancel")).json()["status"] == "cancelled"

    answer = await sandbox.capture("cap_1", 7_000)

    assert answer.status_code == 409
    assert answer.json()["error"] == "NOT_CAPTURABLE"


async def test_a_declined_authorization_is_stored_declined_and_cannot_be_captured(
    sandbox: Sandbox,
) -> None:
    answer = await sandbox.authorize(10_402)

    assert answer.status_code == 402
    assert (answer.json()["status"], answer.json()["failureCode"]) == ("declined", "CARD_DECLINED")
    assert (answer.json()["authorizedAmount"], answer.json()["capturedAmount"]) == (0, 0)
    assert (await sandbox.lookup()).json()["status"] == "declined"
    assert (await sandbox.capture("cap_1", 10_402)).json()["error"] == "NOT_CAPTURABLE"
    assert sandbox.ledger.authorizations_made == 0


async def test_an_unavailable_processor_holds_no_authorization(sandbox: Sandbox) -> None:
    answer = await sandbox.authorize(10_503)

    assert answer.status_code == 503
    assert (await sandbox.lookup()).status_code == 404
    assert sandbox.ledger.authorizations_made == 0


async def test_a_reversal_of_an_authorization_is_refused_with_it(sandbox: Sandbox) -> None:
    await sandbox.authorize()

    answer = await sandbox.post("reverse")

    assert answer.status_code == 409
    assert answer.json()["status"] == "authorized"
    assert answer.json()["transactionId"].startswith("gtx_")
    assert (await sandbox.lookup()).json()["status"] == "authorized"


async def test_an_uncaptured_authorization_cannot_be_refunded(sandbox: Sandbox) -> None:
    await sandbox.authorize()

    answer = await sandbox.post("refunds", {"refundId": "ref_1", "amount": 1_000})

    assert answer.status_code == 409
    assert answer.json()["error"] == "NOT_REFUNDABLE"
    assert (await sandbox.lookup()).json()["refundedAmount"] == 0


async def test_refunds_of_a_capture_are_bounded_by_what_was_captured(sandbox: Sandbox) -> None:
    await sandbox.authorize()
    await sandbox.capture("cap_1", 7_000)

    beyond = await sandbox.post("refunds", {"refundId": "ref_1", "amount": 7_001})
    all_of_it = await sandbox.post("refunds", {"refundId": "ref_2", "amount": 7_000})

    assert beyond.status_code == 422
    assert beyond.json()["error"] == "REFUND_EXCEEDS_CHARGE"
    assert all_of_it.status_code == 200
    assert (await sandbox.lookup()).json()["refundedAmount"] == 7_000


async def test_the_stats_count_authorizations_and_captures(sandbox: Sandbox) -> None:
    await sandbox.authorize()
    await sandbox.capture("cap_1", 7_000)
    await sandbox.capture("cap_2", 7_000)

    stats = (await sandbox.client.get("/v1/stats")).json()

    assert (stats["authorizationsMade"], stats["capturesMade"], stats["captureRequests"]) == (
        1,
        1,
        2,
    )
    assert stats["chargesMade"] == 0


async def test_the_gateway_client_reads_the_sandboxs_authorize_capture_and_void(
    settings: Settings,
) -> None:
    app = create_sandbox_app(timeout_seconds=0.5, reconcile_after_seconds=0.5)
    gateway = GatewayClient(settings, httpx.ASGITransport(app=app))
    try:
        authorized = await gateway.charge(
            payment_id="pay_a", amount=9_000, currency="KRW", payment_method="card", capture=False
        )
        looked_up = await gateway.lookup("pay_a")
        captured = await gateway.capture(payment_id="pay_a", capture_id="cap_1", amount=6_000)
        again = await gateway.capture(payment_id="pay_a", capture_id="cap_1", amount=6_000)
        other = await gateway.capture(payment_id="pay_a", capture_id="cap_2", amount=1_000)
        await gateway.charge(
            payment_id="pay_b", amount=9_000, currency="KRW", payment_method="card", capture=False
        )
        voided = await gateway.cancel("pay_b")
        after_void = await gateway.capture(payment_id="pay_b", capture_id="cap_3", amount=1_000)
    finally:
        await gateway.aclose()

    assert (authorized.outcome, looked_up.outcome) == ("authorized", "authorized")
    assert authorized.transaction_id == looked_up.transaction_id == captured.transaction_id
    assert (captured.outcome, again.outcome) == ("approved", "approved")
    assert (other.outcome, other.failure_code) == ("declined", "ALREADY_CAPTURED")
    assert voided.outcome == "approved"
    assert (after_void.outcome, after_void.failure_code) == ("declined", "NOT_CAPTURABLE")
    assert app.state.ledger.captures_made == 1
