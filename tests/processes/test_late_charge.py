"""A charge request that reaches the gateway late, end to end with real processes: the sandbox
gateway on its own (its `…409` ending holds a charge request until long after the caller gave
up), and `serve` running its worker loops. What the gateway holds is the truth: nothing is
charged, the payment fails `NOT_CHARGED`, and a replay of its key says so."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.processes import ServeProcess, sandbox_process, serve_process

TIMEOUT_SECONDS = 1
RECONCILE_AFTER_SECONDS = 2
HELD_SECONDS = TIMEOUT_SECONDS + RECONCILE_AFTER_SECONDS + 3
"""How long the sandbox holds a `…409` charge request before it would charge."""
ADMIN = {"email": "admin@example.com", "password": "an-admin-password-1"}
SETTINGS = {
    "GATEWAY_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    "RECONCILE_AFTER_SECONDS": str(RECONCILE_AFTER_SECONDS),
    "BOOTSTRAP_ADMIN_EMAIL": ADMIN["email"],
    "BOOTSTRAP_ADMIN_PASSWORD": ADMIN["password"],
}
POLL_STEPS = 120
POLL_SECONDS = 0.25


@dataclass
class Stack:
    api: httpx.Client
    sandbox: httpx.Client
    server: ServeProcess

    def charge(self, payment_id: str) -> httpx.Response:
        """What the gateway really holds for `payment_id`."""
        return self.sandbox.get(f"/v1/charges/{payment_id}")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with (
        sandbox_process(tmp_path, **SETTINGS) as sandbox,
        serve_process(tmp_path, GATEWAY_URL=sandbox.url, **SETTINGS) as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
        httpx.Client(base_url=sandbox.url, timeout=30) as gateway,
    ):
        yield Stack(api, gateway, server)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(api: httpx.Client, email: str, password: str) -> str:
    response = api.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    value: str = response.json()["accessToken"]
    return value


def shop(api: httpx.Client) -> tuple[dict[str, str], dict[str, str], str]:
    """The admin's headers, a user's headers and a merchant's id."""
    admin = bearer(token(api, ADMIN["email"], ADMIN["password"]))
    merchant = api.post(
        "/api/v1/merchants", json={"name": "Late", "category": "cafe"}, headers=admin
    )
    assert merchant.status_code == 201, merchant.text
    user = {"email": "late@example.com", "password": "a-user-password-1", "name": "Late"}
    assert api.post("/api/v1/users", json=user).status_code == 201
    return (
        admin,
        bearer(token(api, user["email"], user["password"])),
        merchant.json()["merchant"]["merchantId"],
    )


def wait_for_status(stack: Stack, headers: dict[str, str], payment_id: str, status: str) -> Any:
    for _ in range(POLL_STEPS):
        payment = stack.api.get(f"/api/v1/payments/{payment_id}", headers=headers).json()
        if payment["payment"]["status"] == status:
            return payment["payment"]
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"never {status}: {payment} / {stack.server.tail()}")


def test_a_charge_request_that_arrives_late_is_refused_and_the_payment_fails_not_charged(
    stack: Stack,
) -> None:
    admin, user, merchant_id = shop(stack.api)
    body = {
        "amount": 10_409,
        "merchantId": merchant_id,
        "paymentMethod": "card",
        "productName": "Held on its way",
    }
    keyed = {**user, "Idempotency-Key": "late-409"}

    sent = time.monotonic()
    created = stack.api.post("/api/v1/payments", json=body, headers=keyed)
    assert created.status_code == 202, created.text
    payment_id = created.json()["payment"]["paymentId"]
    assert stack.charge(payment_id).status_code == 404  # on its way: nothing charged yet

    failed = wait_for_status(stack, user, payment_id, "failed")
    assert failed["failureCode"] == "NOT_CHARGED"
    assert stack.charge(payment_id).json()["status"] == "reversed"

    # Let the held charge request land: the gateway refuses it, having been reversed.
    while time.monotonic() - sent < HELD_SECONDS + 1:
        time.sleep(POLL_SECONDS)
    charge = stack.charge(payment_id)
    assert (charge.status_code, charge.json()["status"]) == (200, "reversed")
    assert stack.sandbox.get("/v1/stats").json()["chargesMade"] == 0

    replay = stack.api.post("/api/v1/payments", json=body, headers=keyed)
    assert replay.status_code == 503, replay.text
    assert replay.json()["error"] == "PAYMENT_NOT_PROCESSED"
    assert replay.headers["Idempotent-Replayed"] == "true"
    events = stack.api.get("/api/v1/events", params={"paymentId": payment_id}, headers=admin)
    assert [e["type"] for e in events.json()["events"]] == ["payment.failed"]
    stats = stack.api.get("/api/v1/users/me/stats", headers=user).json()["stats"]
    assert stats["todaySpent"] == 0
