"""Gateway faults as they happen, with real processes: the sandbox gateway on its own port, a
TCP relay in front of it that the test cuts or slows, `serve` and `worker` processes, and
`SIGSTOP` of an API process. What the gateway holds (`GET /v1/charges/{paymentId}`) is the
truth the service's view is checked against."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from tests.fixtures.process_api import (
    BOOTSTRAP,
    POLL_SECONDS,
    event_types,
    gateway_charge,
    open_shop,
    wait_for_charge_status,
    wait_for_status,
)
from tests.fixtures.processes import ServeProcess, sandbox_process, serve_process, worker_process
from tests.fixtures.relay import Relay, relay_to
from tests.fixtures.servers import nx_27017, redis_server

TIMEOUT_SECONDS = 1
RECONCILE_AFTER_SECONDS = 2
SETTINGS = {
    "GATEWAY_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    "RECONCILE_AFTER_SECONDS": str(RECONCILE_AFTER_SECONDS),
    **BOOTSTRAP,
}
HELD_BY_SANDBOX_SECONDS = TIMEOUT_SECONDS + RECONCILE_AFTER_SECONDS + 3
"""How long the sandbox holds a `…409` charge request before it would charge."""
HELD_BY_RELAY_SECONDS = 10
"""Long past the caller's timeout and the reconciler's delay."""


def wait_until(deadline: float) -> None:
    while time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[httpx.Client]:
    with (
        sandbox_process(tmp_path, **SETTINGS) as process,
        httpx.Client(base_url=process.url, timeout=30) as client,
    ):
        yield client


@pytest.fixture
def relay(sandbox: httpx.Client) -> Iterator[Relay]:
    with relay_to(sandbox.base_url.port or 0) as relay:
        yield relay


@pytest.fixture
def behind_relay(tmp_path: Path, relay: Relay) -> Iterator[tuple[ServeProcess, httpx.Client]]:
    """`serve` on its in-memory stores (running the worker loops), its gateway behind the
    relay, and a client to it."""
    with (
        serve_process(tmp_path, GATEWAY_URL=relay.url, **SETTINGS) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        yield server, api


def test_a_charge_request_that_arrives_late_is_refused_and_the_payment_fails_not_charged(
    tmp_path: Path, sandbox: httpx.Client
) -> None:
    with (
        serve_process(tmp_path, GATEWAY_URL=str(sandbox.base_url), **SETTINGS) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        shop = open_shop(api)
        body = shop.payment(10_409)
        keyed = {**shop.user, "Idempotency-Key": "late-409"}

        sent = time.monotonic()
        created = api.post("/api/v1/payments", json=body, headers=keyed)
        assert created.status_code == 202, created.text
        payment_id = created.json()["payment"]["paymentId"]
        assert gateway_charge(sandbox, payment_id) is None  # on its way: nothing charged yet

        failed = wait_for_status(api, shop.user, payment_id, "failed")
        assert failed["failureCode"] == "NOT_CHARGED"
        assert wait_for_charge_status(sandbox, payment_id, "reversed")

        # The held charge request lands: the gateway refuses it, the id having been reversed.
        wait_until(sent + HELD_BY_SANDBOX_SECONDS + 1)
        charge = gateway_charge(sandbox, payment_id)
        assert charge is not None
        assert charge["status"] == "reversed"
        assert sandbox.get("/v1/stats").json()["chargesMade"] == 0

        replay = api.post("/api/v1/payments", json=body, headers=keyed)
        assert replay.status_code == 503, replay.text
        assert replay.json()["error"] == "PAYMENT_NOT_PROCESSED"
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert event_types(api, shop.admin, payment_id) == ["payment.failed"]
        stats = api.get("/api/v1/users/me/stats", headers=shop.user).json()["stats"]
        assert stats["todaySpent"] == 0


def test_a_charge_landing_after_the_gateway_was_unreachable_is_refunded_at_the_gateway(
    sandbox: httpx.Client, relay: Relay, behind_relay: tuple[ServeProcess, httpx.Client]
) -> None:
    server, api = behind_relay
    shop = open_shop(api)
    relay.cut()
    created = api.post(
        "/api/v1/payments",
        json=shop.payment(31_000),
        headers={**shop.user, "Idempotency-Key": "cut-1"},
    )
    assert created.status_code == 503, created.text
    assert created.json()["error"] == "GATEWAY_UNAVAILABLE"
    payment_id = created.json()["payment"]["paymentId"]
    assert gateway_charge(sandbox, payment_id) is None
    relay.restore()

    # The charge reaches the gateway anyway, by another way than the refused connection.
    landed = sandbox.post(
        "/v1/charges",
        json={"paymentId": payment_id, "amount": 31_000, "currency": "KRW"},
    )
    assert landed.status_code == 200, landed.text

    wait_for_charge_status(sandbox, payment_id, "cancelled")
    for _ in range(100):  # the worker notes it just after the gateway's yes
        if "late_charges_refunded_total 1.0" in api.get("/metrics").text:
            break
        time.sleep(POLL_SECONDS)
    payment = api.get(f"/api/v1/payments/{payment_id}", headers=shop.user).json()["payment"]
    assert (payment["status"], payment["failureCode"]) == ("failed", "GATEWAY_UNAVAILABLE")
    assert event_types(api, shop.admin, payment_id) == ["payment.failed"]
    assert "late_charges_refunded_total 1.0" in api.get("/metrics").text
    lines = [r for r in server.log_records() if r["message"] == "late charge refunded"]
    assert [(line["paymentId"], line["business"]) for line in lines] == [(payment_id, True)]


def test_a_paused_process_whose_charge_was_held_leaves_one_failure_and_no_charge(
    tmp_path: Path, sandbox: httpx.Client, relay: Relay
) -> None:
    """The issue's repro: a proxy holds the charge request while the API process is paused;
    the worker reverses the payment; the request lands, refused; the process resumes. The
    payment has one outcome, one event and no ledger record, and nothing is charged."""
    with (
        nx_27017(tmp_path, pytest.fail) as mongodb_uri,
        redis_server(tmp_path, pytest.fail) as redis,
    ):
        shared = {
            **SETTINGS,
            "MONGODB_URI": mongodb_uri,
            "MONGODB_TRANSACTIONS": "off",
            "REDIS_URL": redis.url,
            "GATEWAY_URL": relay.url,
        }
        with (
            serve_process(tmp_path, **shared) as server,
            worker_process(tmp_path, **shared),
            httpx.Client(base_url=server.url, timeout=60) as api,
        ):
            shop = open_shop(api)
            answers: list[httpx.Response] = []
            relay.hold(HELD_BY_RELAY_SECONDS)
            before = relay.received
            held_at = time.monotonic()
            create = threading.Thread(
                target=lambda: answers.append(
                    api.post(
                        "/api/v1/payments",
                        json=shop.payment(41_000),
                        headers={**shop.user, "Idempotency-Key": "paused-1"},
                    )
                ),
                daemon=True,
            )
            create.start()
            for _ in range(200):  # until the charge request is in the relay's hands
                if relay.received > before:
                    break
                time.sleep(0.02)
            assert relay.received > before
            os.kill(server.process.pid, signal.SIGSTOP)
            try:
                relay.restore()  # the worker's calls pass; the held request stays held
                with MongoClient(mongodb_uri) as mongo:
                    [stored] = mongo.payments.payments.find({})
                payment_id = stored["_id"]
                wait_for_charge_status(sandbox, payment_id, "reversed")
                wait_until(held_at + HELD_BY_RELAY_SECONDS + 1)  # the request has landed
            finally:
                os.kill(server.process.pid, signal.SIGCONT)
            create.join(timeout=30)
            [answer] = answers
            # Its wait for the gateway ran out while it was paused (202), or the refusal of
            # the reversed charge reached it first (503 PAYMENT_NOT_PROCESSED).
            assert answer.status_code in (202, 503), answer.text

            failed = wait_for_status(api, shop.user, payment_id, "failed")
            assert failed["failureCode"] == "NOT_CHARGED"
            charge = gateway_charge(sandbox, payment_id)
            assert charge is not None
            assert charge["status"] == "reversed"
            assert sandbox.get("/v1/stats").json()["chargesMade"] == 0
            assert event_types(api, shop.admin, payment_id) == ["payment.failed"]
            with MongoClient(mongodb_uri) as mongo:
                assert list(mongo.payments.transactions.find({"paymentId": payment_id})) == []


def test_a_refund_refused_while_the_gateway_was_cut_is_made_by_its_retry(
    sandbox: httpx.Client, relay: Relay, behind_relay: tuple[ServeProcess, httpx.Client]
) -> None:
    _, api = behind_relay
    shop = open_shop(api)
    paid = api.post(
        "/api/v1/payments",
        json=shop.payment(20_000),
        headers={**shop.user, "Idempotency-Key": "to-refund"},
    )
    assert paid.status_code == 201, paid.text
    payment_id = paid.json()["payment"]["paymentId"]
    refund = {"amount": 5_000, "reason": "one item returned"}
    as_admin = {**shop.admin, "Idempotency-Key": "refund-1"}

    relay.cut()
    refused = api.post(f"/api/v1/payments/{payment_id}/refund", json=refund, headers=as_admin)
    assert refused.status_code == 503, refused.text
    relay.restore()
    retried = api.post(f"/api/v1/payments/{payment_id}/refund", json=refund, headers=as_admin)

    assert retried.status_code == 200, retried.text
    assert retried.json()["message"] == "Refund processed successfully"
    assert retried.json()["refund"]["status"] == "succeeded"
    charge = gateway_charge(sandbox, payment_id)
    assert charge is not None
    assert charge["refundedAmount"] == 5_000
