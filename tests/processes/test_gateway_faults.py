"""Gateway faults as they happen, on a stack of real processes (tests/fixtures/processes.py):
the sandbox gateway with a relay in front of it that the test cuts or holds, `serve` and
`worker` processes, `SIGSTOP` of an API process. What the gateway holds
(`GET /v1/charges/{paymentId}`) is the truth the service's view is checked against."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.fixtures.processes import (
    SETTLE_SECONDS,
    ProcessStack,
    Shop,
    eventually,
    new_key,
    open_shop,
    pay,
    sandbox_stats,
    wait_for_charge,
    wait_until,
)
from tests.fixtures.serve_process import serve_process

TIMEOUT_SECONDS = 1
RECONCILE_AFTER_SECONDS = 2
HELD_BY_SANDBOX_SECONDS = TIMEOUT_SECONDS + RECONCILE_AFTER_SECONDS + 3
"""How long the sandbox holds a `…409` charge request before it would charge."""


@pytest.fixture
def stack_options() -> dict[str, Any]:
    return {
        "gateway_timeout_seconds": TIMEOUT_SECONDS,
        "reconcile_after_seconds": RECONCILE_AFTER_SECONDS,
    }


@pytest.fixture
def threads() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def status_of(http: httpx.Client, shop: Shop, payment_id: str) -> dict[str, Any]:
    response = http.get(f"/api/v1/payments/{payment_id}", headers=shop.user.headers)
    assert response.status_code == 200, response.text
    payment: dict[str, Any] = response.json()["payment"]
    return payment


def event_types(http: httpx.Client, shop: Shop, payment_id: str) -> list[str]:
    response = http.get("/api/v1/events", params={"paymentId": payment_id}, headers=shop.admin)
    assert response.status_code == 200, response.text
    return [event["type"] for event in response.json()["events"]]


def test_a_charge_request_that_arrives_late_is_refused_and_the_payment_fails_not_charged(
    stack: ProcessStack,
) -> None:
    api = stack.api()
    worker = stack.worker()
    with api.client() as http:
        shop = open_shop(http)
        key = new_key()
        sent = time.monotonic()
        created = pay(http, shop.user, shop.merchant.merchant_id, 10_409, key=key)
        assert created.status_code == 202, created.text
        payment_id = created.json()["payment"]["paymentId"]
        assert stack.sandbox.charge(payment_id) is None  # on its way: nothing charged yet

        wait_for_charge(stack, payment_id, "reversed")
        wait_until(
            lambda: status_of(http, shop, payment_id)["status"] == "failed",
            timeout=SETTLE_SECONDS,
            what="the payment to fail",
            context=worker.tail,
        )
        assert status_of(http, shop, payment_id)["failureCode"] == "NOT_CHARGED"

        # The held request lands: the gateway refuses it, the paymentId having been reversed.
        wait_until(
            lambda: time.monotonic() > sent + HELD_BY_SANDBOX_SECONDS + 1,
            timeout=HELD_BY_SANDBOX_SECONDS + 5,
            what="the held charge request to land",
        )
        assert (stack.sandbox.charge(payment_id) or {}).get("status") == "reversed"
        assert sandbox_stats(stack)["chargesMade"] == 0

        replay = pay(http, shop.user, shop.merchant.merchant_id, 10_409, key=key)
        assert replay.status_code == 503, replay.text
        assert replay.json()["error"] == "PAYMENT_NOT_PROCESSED"
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert event_types(http, shop, payment_id) == ["payment.failed"]
        stats = http.get("/api/v1/users/me/stats", headers=shop.user.headers).json()["stats"]
        assert stats["todaySpent"] == 0


def test_a_charge_landing_after_the_gateway_was_unreachable_is_refunded_at_the_gateway(
    stack: ProcessStack,
) -> None:
    api = stack.api()
    worker = stack.worker()
    with api.client() as http:
        shop = open_shop(http)
        stack.relay.cut()
        created = pay(http, shop.user, shop.merchant.merchant_id, 31_000)
        assert created.status_code == 503, created.text
        assert created.json()["error"] == "GATEWAY_UNAVAILABLE"
        payment_id = created.json()["payment"]["paymentId"]
        assert stack.sandbox.charge(payment_id) is None
        stack.relay.restore()

        # The charge reaches the gateway anyway, by another way than the refused connection.
        landed = httpx.post(
            f"{stack.sandbox.url}/v1/charges",
            json={"paymentId": payment_id, "amount": 31_000, "currency": "KRW"},
            timeout=10,
        )
        assert landed.status_code == 200, landed.text

        wait_for_charge(stack, payment_id, "cancelled")
        wait_until(
            lambda: worker.logged("late charge refunded"),
            timeout=SETTLE_SECONDS,
            what="the worker to log the late charge's refund",
            context=worker.tail,
        )
        payment = status_of(http, shop, payment_id)
        assert (payment["status"], payment["failureCode"]) == ("failed", "GATEWAY_UNAVAILABLE")
        assert event_types(http, shop, payment_id) == ["payment.failed"]
        [line] = [r for r in worker.log_records() if r["message"] == "late charge refunded"]
        assert (line["paymentId"], line["business"]) == (payment_id, True)


def test_a_paused_process_whose_charge_was_held_leaves_one_failure_and_no_charge(
    stack: ProcessStack, threads: concurrent.futures.ThreadPoolExecutor
) -> None:
    """The issue's repro: a proxy holds the charge request while the API process is paused;
    the worker (which reaches the gateway directly) reverses the payment; the request lands,
    refused; the process resumes. The payment has one outcome, one event and no ledger
    record, and nothing is charged."""
    api = stack.api()
    worker = stack.worker(GATEWAY_URL=stack.sandbox.url)
    with api.client(timeout=120) as http:
        shop = open_shop(http)
        stack.relay.hold()
        before = stack.relay.received_bytes
        create = threads.submit(pay, http, shop.user, shop.merchant.merchant_id, 41_000)
        wait_until(
            lambda: stack.relay.received_bytes > before,
            timeout=SETTLE_SECONDS,
            what="the charge request to reach the relay",
            context=api.tail,
        )
        api.pause()
        try:
            [payment_id] = stack.charge_requests()
            wait_for_charge(stack, payment_id, "reversed")
            requests = sandbox_stats(stack)["chargeRequests"]
            stack.relay.release()  # the held charge request lands
            wait_until(
                lambda: sandbox_stats(stack)["chargeRequests"] > requests,
                timeout=SETTLE_SECONDS,
                what="the held charge request to reach the gateway",
            )
        finally:
            api.resume()
        answer = create.result(timeout=SETTLE_SECONDS)
        # Its wait for the gateway ran out while it was paused (202), or the refusal of the
        # reversed charge reached it first (503 PAYMENT_NOT_PROCESSED).
        assert answer.status_code in (202, 503), answer.text

        assert eventually(
            lambda: status_of(http, shop, payment_id)["status"] == "failed",
            timeout=SETTLE_SECONDS,
        ), worker.tail()
        assert status_of(http, shop, payment_id)["failureCode"] == "NOT_CHARGED"
        assert (stack.sandbox.charge(payment_id) or {}).get("status") == "reversed"
        assert sandbox_stats(stack)["chargesMade"] == 0
        assert event_types(http, shop, payment_id) == ["payment.failed"]
        assert list(stack.db()["transactions"].find({"paymentId": payment_id})) == []


def test_a_refund_refused_while_the_gateway_was_cut_is_made_by_its_retry(
    stack: ProcessStack, tmp_path: Path
) -> None:
    """On a `serve` of its own, on the in-memory stores: nx-27017 stores the `$push`ed
    reservation of a refund as a string (tests/wire), which no refund survives there."""
    with (
        serve_process(
            tmp_path,
            GATEWAY_URL=stack.relay.url,
            GATEWAY_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
            BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
            BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        ) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        shop = open_shop(http)
        paid = pay(http, shop.user, shop.merchant.merchant_id, 20_000)
        assert paid.status_code == 201, paid.text
        payment_id = paid.json()["payment"]["paymentId"]
        refund = {"amount": 5_000, "reason": "one item returned"}
        keyed = {**shop.admin, "Idempotency-Key": "refund-1"}

        stack.relay.cut()
        # The API process's kept-alive connection to the relay closed with the cut; give it
        # the moment it takes to see that, so its next call meets a refused connect.
        time.sleep(0.5)
        refused = http.post(f"/api/v1/payments/{payment_id}/refund", json=refund, headers=keyed)
        assert refused.status_code == 503, refused.text
        stack.relay.restore()
        retried = http.post(f"/api/v1/payments/{payment_id}/refund", json=refund, headers=keyed)

        assert retried.status_code == 200, retried.text
        assert retried.json()["message"] == "Refund processed successfully"
        assert retried.json()["refund"]["status"] == "succeeded"
        assert (stack.sandbox.charge(payment_id) or {}).get("refundedAmount") == 5_000
