"""The process stack end to end: an API process, the relay and the sandbox gateway process,
each its own process on 127.0.0.1. What was charged is read from the sandbox itself."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.fixtures.processes import (
    ProcessStack,
    new_key,
    open_shop,
    pay,
    payments_of,
    process_stack,
)


def test_a_payment_through_api_relay_and_sandbox_is_charged_exactly_once(
    stack: ProcessStack,
) -> None:
    api = stack.api()
    with api.client() as http:
        shop = open_shop(http)
        key = new_key()

        created = pay(http, shop.user, shop.merchant.merchant_id, 12_000, key=key)
        replayed = pay(http, shop.user, shop.merchant.merchant_id, 12_000, key=key)

        assert created.status_code == 201, created.text
        payment = created.json()["payment"]
        assert payment["status"] == "completed"
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["payment"]["paymentId"] == payment["paymentId"]
        assert [p["paymentId"] for p in payments_of(http, shop.user)] == [payment["paymentId"]]
    charge = stack.sandbox.charge(payment["paymentId"])
    assert charge is not None
    assert (charge["paymentId"], charge["amount"], charge["status"], charge["refundedAmount"]) == (
        payment["paymentId"],
        12_000,
        "approved",
        0,
    )
    assert stack.charge_requests() == [payment["paymentId"]]  # one request, one charge


def test_with_the_relay_cut_a_create_is_503_and_the_sandbox_holds_nothing_for_it(
    stack: ProcessStack,
) -> None:
    api = stack.api()
    with api.client() as http:
        shop = open_shop(http)
        assert pay(http, shop.user, shop.merchant.merchant_id, 5_000).status_code == 201

        stack.relay.cut()
        refused = pay(http, shop.user, shop.merchant.merchant_id, 6_000)

        assert refused.status_code == 503, refused.text
        body = refused.json()
        assert body["error"] == "GATEWAY_UNAVAILABLE"
        failed = body["payment"]
        assert failed["status"] == "failed"
        assert stack.sandbox.charge(failed["paymentId"]) is None
        assert failed["paymentId"] not in stack.charge_requests()

        stack.relay.restore()
        again = pay(http, shop.user, shop.merchant.merchant_id, 7_000)
        assert again.status_code == 201, again.text
        assert stack.sandbox.charge(again.json()["payment"]["paymentId"]) is not None


def test_two_api_processes_share_one_database_and_one_redis(stack: ProcessStack) -> None:
    first, second = stack.api("api-1"), stack.api("api-2")
    with first.client() as one, second.client() as two:
        shop = open_shop(one)
        key = new_key()
        created = pay(one, shop.user, shop.merchant.merchant_id, 8_000, key=key)
        assert created.status_code == 201, created.text
        payment_id = created.json()["payment"]["paymentId"]

        replayed = pay(two, shop.user, shop.merchant.merchant_id, 8_000, key=key)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["payment"]["paymentId"] == payment_id
        read = two.get(f"/api/v1/payments/{payment_id}", headers=shop.user.headers)
        assert read.status_code == 200, read.text
        assert read.json()["payment"]["status"] == "completed"
    assert stack.charge_requests() == [payment_id]


def test_a_paused_process_answers_nothing_until_resumed_and_is_still_stopped_cleanly(
    tmp_path: Path,
) -> None:
    with process_stack(tmp_path / "stack") as own:
        api = own.api()
        api.pause()
        try:
            with pytest.raises(httpx.TimeoutException):
                httpx.get(f"{api.url}/health", timeout=1.0)
        finally:
            api.resume()
        api.wait_answering("/health")
        api.pause()  # left paused: closing the stack resumes it, so it hears SIGTERM
    assert not api.alive
    # A graceful stop, not a SIGKILL: its shutdown ran (uvicorn then exits by the SIGTERM).
    assert api.service.process.returncode in (0, -signal.SIGTERM)
    assert api.service.logged("payments-api stopped"), api.tail()
    assert not own.relay.running
    assert not own.sandbox.alive
