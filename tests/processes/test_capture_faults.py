"""Manual capture meeting real faults, on a stack of real processes (tests/fixtures/processes.py):
a capture whose API process is SIGKILLed after the sandbox gateway took the money but before the
process heard, and a void whose answer is lost when the relay is cut after the sandbox acted.
A worker's reconciliation finishes each one exactly as if the answer had come; what the sandbox
holds (`GET /v1/charges/{paymentId}`, `/v1/stats`) is the truth the service is checked against."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures.processes import (
    SETTLE_SECONDS,
    ProcessStack,
    Shop,
    open_shop,
    pay,
    sandbox_stats,
    wait_for_charge,
    wait_until,
)

RECONCILE_AFTER_SECONDS = 2
WAITING_API_TIMEOUT_SECONDS = 60
"""GATEWAY_TIMEOUT_SECONDS of the API process whose gateway answer is held (the most the settings
allow): it must still be waiting when the test kills it or cuts its connection."""


@pytest.fixture
def stack_options() -> dict[str, Any]:
    return {"gateway_timeout_seconds": 2, "reconcile_after_seconds": RECONCILE_AFTER_SECONDS}


@pytest.fixture
def threads() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def authorized(http: httpx.Client, shop: Shop, amount: int) -> str:
    """A manual-capture payment of `amount`, authorized through the API: its paymentId."""
    created = pay(http, shop.user, shop.merchant.merchant_id, amount, captureMethod="manual")
    assert created.status_code == 201, created.text
    payment = created.json()["payment"]
    assert (payment["status"], payment["capturedAmount"]) == ("authorized", 0)
    payment_id: str = payment["paymentId"]
    return payment_id


def payment_of(http: httpx.Client, shop: Shop, payment_id: str) -> dict[str, Any]:
    response = http.get(f"/api/v1/payments/{payment_id}", headers=shop.user.headers)
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()["payment"]
    return payment


def today_spent(http: httpx.Client, shop: Shop) -> int:
    response = http.get("/api/v1/users/me/stats", headers=shop.user.headers)
    assert response.status_code == 200, response.text
    spent: int = response.json()["stats"]["todaySpent"]
    return spent


def event_types(http: httpx.Client, shop: Shop, payment_id: str) -> list[str]:
    """The payment's published events (the admin's view: drafts are no events), sorted."""
    response = http.get("/api/v1/events", params={"paymentId": payment_id}, headers=shop.admin)
    assert response.status_code == 200, response.text
    return sorted(event["type"] for event in response.json()["events"])


def ledger_of(stack: ProcessStack, payment_id: str) -> list[tuple[str, int]]:
    """(type, amount) of every ledger record of the payment, in the stack's database."""
    records = stack.db()["transactions"].find({"paymentId": payment_id})
    return sorted((record["type"], record["amount"]) for record in records)


def wait_for_status(
    http: httpx.Client, shop: Shop, payment_id: str, status: str, stack: ProcessStack
) -> None:
    wait_until(
        lambda: payment_of(http, shop, payment_id)["status"] == status,
        timeout=SETTLE_SECONDS,
        what=f"the payment to be {status}",
        context=stack.tails,
    )


def test_a_capture_whose_process_died_after_the_gateway_took_it_is_completed_by_reconciliation(
    stack: ProcessStack, threads: concurrent.futures.ThreadPoolExecutor
) -> None:
    """The sandbox captured 18,000 of a 30,000 authorization; the API process that asked was
    killed before it heard. The worker asks again under the same capture id: the payment is
    completed with what the gateway took, one ledger record, one `payment.completed`, the rest
    of the hold let go — and the gateway captured once."""
    dying = stack.api("api-dying", GATEWAY_TIMEOUT_SECONDS=str(WAITING_API_TIMEOUT_SECONDS))
    survivor = stack.api("api-survivor")
    with survivor.client() as http:
        shop = open_shop(http)
        payment_id = authorized(http, shop, 30_000)

        def capture_on(api_client: httpx.Client) -> httpx.Response:
            with api_client as client:
                return client.post(
                    f"/api/v1/payments/{payment_id}/capture",
                    json={"amount": 18_000},
                    headers=shop.merchant.headers,
                )

        stack.relay.hold_answers()  # the capture reaches the sandbox; its answer waits
        in_flight = threads.submit(capture_on, dying.client(timeout=WAITING_API_TIMEOUT_SECONDS))
        wait_for_charge(stack, payment_id, "approved")
        assert not in_flight.done(), in_flight.result().text
        dying.kill()
        with pytest.raises(httpx.TransportError):  # its process died before it could answer
            in_flight.result(timeout=30)
        stack.relay.passthrough()  # the held answer now meets a closed connection

        # What the dead process left: the gateway took the money, the service has not heard.
        assert payment_of(http, shop, payment_id)["status"] == "authorized"
        assert ledger_of(stack, payment_id) == []

        worker = stack.worker()
        wait_for_status(http, shop, payment_id, "completed", stack)

        payment = payment_of(http, shop, payment_id)
        assert (payment["amount"], payment["capturedAmount"]) == (30_000, 18_000)
        assert ledger_of(stack, payment_id) == [("payment", 18_000)]
        assert event_types(http, shop, payment_id) == ["payment.authorized", "payment.completed"]
        assert today_spent(http, shop) == 18_000  # the 12,000 not taken is let go
        assert worker.alive
    charge = stack.sandbox.charge(payment_id)
    assert charge is not None
    assert (charge["status"], charge["amount"], charge["capturedAmount"]) == (
        "approved",
        18_000,
        18_000,
    )
    assert sandbox_stats(stack)["capturesMade"] == 1


def test_a_void_whose_answer_was_lost_in_a_cut_is_finished_by_reconciliation(
    stack: ProcessStack, threads: concurrent.futures.ThreadPoolExecutor
) -> None:
    """The sandbox voided the authorization; the relay was cut before its answer came back, so
    the cancel could not be confirmed (503). The worker asks again: the payment is cancelled,
    its hold given back, no ledger record, one `payment.cancelled`."""
    api = stack.api("api-1", GATEWAY_TIMEOUT_SECONDS=str(WAITING_API_TIMEOUT_SECONDS))
    with api.client(timeout=WAITING_API_TIMEOUT_SECONDS) as http:
        shop = open_shop(http)
        payment_id = authorized(http, shop, 25_000)
        assert today_spent(http, shop) == 25_000

        stack.relay.hold_answers()
        in_flight = threads.submit(
            http.post,
            f"/api/v1/payments/{payment_id}/cancel",
            json={"reason": "Out of stock"},
            headers=shop.user.headers,
        )
        wait_for_charge(stack, payment_id, "cancelled")
        assert not in_flight.done(), in_flight.result().text
        stack.relay.cut()  # the void's answer is lost with its connection
        answer = in_flight.result(timeout=SETTLE_SECONDS)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == "GATEWAY_UNAVAILABLE"

        # Not confirmed, so nothing is given back yet: the hold stands until it is.
        assert payment_of(http, shop, payment_id)["status"] == "authorized"
        assert today_spent(http, shop) == 25_000
        stack.relay.restore()
        stack.relay.passthrough()

        stack.worker()
        wait_for_status(http, shop, payment_id, "cancelled", stack)

        payment = payment_of(http, shop, payment_id)
        assert (payment["capturedAmount"], payment["cancelReason"]) == (0, "Out of stock")
        assert today_spent(http, shop) == 0
        assert ledger_of(stack, payment_id) == []
        assert event_types(http, shop, payment_id) == ["payment.authorized", "payment.cancelled"]
    assert (stack.sandbox.charge(payment_id) or {}).get("status") == "cancelled"
    assert sandbox_stats(stack)["capturesMade"] == 0
