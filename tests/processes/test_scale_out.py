"""Scaling out (issue 13 item 4): two `serve` processes and a worker on one MongoDB wire
server (nx-27017, MONGODB_TRANSACTIONS=off) and one Redis, a standalone redis-server and a
three-master Redis Cluster (REDIS_CLUSTER=true) in turn. Requests are sent to both processes at
once; the truth about money is what the sandbox gateway holds.

- one Idempotency-Key sent to both at once makes one payment and one charge;
- a daily limit raced from both is never passed, at the gateway either;
- a revocation through one is refused by the other within 5 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.processes import (
    ApiProcess,
    ProcessStack,
    new_key,
    open_shop,
    pay,
    payments_of,
    process_stack,
)
from tests.processes.test_revocation import refused_within, status_of

REQUESTS_PER_PROCESS = 5
"""How many requests each of the two processes is sent at once."""
AMOUNT = 10_000


class TwoProcesses:
    """The stack with its two API processes and its worker, each API with a client."""

    def __init__(self, stack: ProcessStack, first: ApiProcess, second: ApiProcess) -> None:
        self.stack = stack
        self.apis = (first, second)

    def at_once(self, send: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
        """`send` REQUESTS_PER_PROCESS times through each process, every call released at
        the same moment (a barrier), each on its own connection."""
        calls = 2 * REQUESTS_PER_PROCESS
        barrier = threading.Barrier(calls, timeout=30)

        def one(api: ApiProcess) -> httpx.Response:
            with api.client() as http:
                barrier.wait()
                return send(http)

        targets = [api for api in self.apis for _ in range(REQUESTS_PER_PROCESS)]
        with ThreadPoolExecutor(max_workers=calls) as pool:
            return list(pool.map(one, targets))


@pytest.fixture(scope="module", params=["standalone", "cluster"])
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TwoProcesses]:
    """One stack per Redis kind for the module's tests (each test makes its own users)."""
    workdir: Path = tmp_path_factory.mktemp(f"scale-out-{request.param}")
    with process_stack(workdir, redis_cluster=request.param == "cluster") as stack:
        first, second = stack.api("api-1"), stack.api("api-2")
        stack.worker("worker-1")
        yield TwoProcesses(stack, first, second)


def http_of(deployment: TwoProcesses, index: int = 0) -> httpx.Client:
    return deployment.apis[index].client()


def test_one_key_sent_to_both_processes_makes_one_payment_and_one_charge(
    deployment: TwoProcesses,
) -> None:
    with http_of(deployment) as http:
        shop = open_shop(http)
    key = new_key()

    answers = deployment.at_once(
        lambda http: pay(http, shop.user, shop.merchant.merchant_id, AMOUNT, key=key)
    )

    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 201, 409}, [answer.text for answer in answers]
    made = {answer.json()["payment"]["paymentId"] for answer in answers if answer.status_code < 300}
    assert len(made) == 1, made
    with http_of(deployment, 1) as http:
        stored = payments_of(http, shop.user)
    assert [payment["paymentId"] for payment in stored] == sorted(made)
    [payment_id] = made
    charge = deployment.stack.sandbox.charge(payment_id)
    assert charge is not None
    assert (charge["amount"], charge["status"]) == (AMOUNT, "approved"), charge
    assert deployment.stack.charge_requests().count(payment_id) == 1


def test_a_daily_limit_raced_from_both_processes_is_never_passed(
    deployment: TwoProcesses,
) -> None:
    limit = 3 * AMOUNT + AMOUNT // 2
    with http_of(deployment) as http:
        shop = open_shop(http)
        lowered = http.patch(
            f"/api/v1/users/{shop.user.user_id}", json={"dailyLimit": limit}, headers=shop.admin
        )
        assert lowered.status_code == 200, lowered.text

    answers = deployment.at_once(
        lambda http: pay(http, shop.user, shop.merchant.merchant_id, AMOUNT)
    )

    paid = [answer.json()["payment"] for answer in answers if answer.status_code == 201]
    refused = [answer.json() for answer in answers if answer.status_code != 201]
    assert len(paid) == 3, [answer.text for answer in answers]
    assert {body["error"] for body in refused} == {"DAILY_LIMIT_EXCEEDED"}, refused
    charged = _charged_amounts(deployment, [payment["paymentId"] for payment in paid])
    assert sum(charged) == 3 * AMOUNT <= limit
    with http_of(deployment, 1) as http:
        stats = http.get("/api/v1/users/me/stats", headers=shop.user.headers).json()["stats"]
    assert stats["todaySpent"] == 3 * AMOUNT
    assert stats["remainingToday"] == limit - 3 * AMOUNT


def _charged_amounts(deployment: TwoProcesses, payment_ids: list[str]) -> list[int]:
    charges: list[dict[str, Any] | None] = [
        deployment.stack.sandbox.charge(payment_id) for payment_id in payment_ids
    ]
    assert all(charge is not None and charge["status"] == "approved" for charge in charges)
    return [int(charge["amount"]) for charge in charges if charge is not None]


def test_a_user_deactivated_through_one_process_is_refused_by_the_other_within_5_s(
    deployment: TwoProcesses,
) -> None:
    with http_of(deployment) as one, http_of(deployment, 1) as two:
        shop = open_shop(one)
        paid = pay(one, shop.user, shop.merchant.merchant_id, AMOUNT)
        assert paid.status_code == 201, paid.text
        path = f"/api/v1/payments/{paid.json()['payment']['paymentId']}"
        check = status_of(two, path, shop.user.headers)
        assert check() == 200  # the other process has just served it (and cached it)

        deactivated = one.patch(
            f"/api/v1/users/{shop.user.user_id}", json={"isActive": False}, headers=shop.admin
        )
        since = time.monotonic()

        assert deactivated.status_code == 200, deactivated.text
        refused_within(check, since)
        assert status_of(two, path, shop.merchant.headers)() == 200
