"""Reconciler.run_once with a fake clock: what a lost gateway answer or a dead process left
pending is settled by what the gateway says — completed, failed (hold released), or reversed
at the gateway and then failed NOT_CHARGED — and left pending while the gateway says nothing;
a refund reserved with no recorded answer is asked again and recorded.

(Two reconcilers never settling one payment twice is covered by
tests/integration/test_reconciliation.py.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest

from payments_api.config.constants import EventType, FailureCode, PaymentStatus
from payments_api.config.settings import Settings
from payments_api.models import refund as refunds_model
from payments_api.models.payment import Payment, public_view
from payments_api.models.user import User
from payments_api.services.registry import Services
from payments_api.utils import ids, workers
from tests.services.conftest import (
    USER_DAILY_LIMIT,
    Clock,
    Fault,
    MakeMerchant,
    MakePayment,
    Sandbox,
    answering,
    charge_at_gateway,
    drafts_of,
    events_of,
    hanging,
    ledger_of,
    raising,
    reconciler_at,
    reserve_refund,
    stored,
)

LIMIT = USER_DAILY_LIMIT  # the `user` fixture's
OTHER_HOLD = 3_000
NewPayment = Callable[[int], Awaitable[Payment]]


@pytest.fixture
def service_settings(make_settings: Callable[..., Settings]) -> Settings:
    """A short gateway timeout, so an amount ending 408 (answered 2 s after the timeout) and a
    gateway that never answers leave their payment pending quickly."""
    return make_settings(gateway_timeout_seconds=0.2)


@pytest.fixture
async def new_payment(
    make_pending_payment: MakePayment, make_merchant: MakeMerchant, user: User
) -> NewPayment:
    merchant = await make_merchant()

    async def make(amount: int) -> Payment:
        return await make_pending_payment(user, merchant, amount)

    return make


def after_reconcile_delay(services: Services, payment: Payment) -> Clock:
    """A clock at the moment `payment` has been unchanged for RECONCILE_AFTER_SECONDS."""
    return Clock(payment.updated_at + timedelta(seconds=services.settings.reconcile_after_seconds))


async def spent(services: Services, payment: Payment) -> int:
    return await services.limits.spent(payment.user_id, payment.hold_day)


async def hold_another(services: Services, payment: Payment) -> None:
    """Another hold of the payment's user on its day (no payment to reconcile behind it), so
    a release given twice, or the wrong one, would show in `spent`."""
    await services.limits.hold(
        user_id=payment.user_id,
        day=payment.hold_day,
        payment_id=ids.payment_id(),
        amount=OTHER_HOLD,
        limit=LIMIT,
    )


def lookups_of(sandbox: Sandbox, payment: Payment) -> list[str]:
    return [call for call in sandbox.transport.calls if call == f"GET /v1/charges/{payment.id}"]


# --- a pending payment ------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [10_000, 10_408], ids=["answer-lost", "timed-out-408"])
async def test_a_stale_pending_payment_the_gateway_approved_is_completed(
    services: Services, sandbox: Sandbox, new_payment: NewPayment, amount: int
) -> None:
    payment = await new_payment(amount)
    await charge_at_gateway(services, payment)  # and the answer never made it to the payment
    charge = await sandbox.charge_of(payment.id)
    assert charge is not None
    assert charge["status"] == "approved"

    await reconciler_at(services, after_reconcile_delay(services, payment)).run_once()

    current = await stored(services, payment.id)
    assert current.status == PaymentStatus.COMPLETED
    assert current.transaction_id == charge["transactionId"]
    assert [(r.type, r.amount) for r in await ledger_of(services, payment.id)] == [
        ("payment", amount)
    ]
    [event] = await events_of(services, payment.id)
    assert event.type == EventType.PAYMENT_COMPLETED
    assert event.data["payment"] == public_view(current)
    assert await spent(services, payment) == amount


async def test_a_stale_pending_payment_the_gateway_declined_is_failed_and_its_hold_released(
    services: Services, new_payment: NewPayment
) -> None:
    payment = await new_payment(10_402)  # the sandbox declines amounts ending 402
    await hold_another(services, payment)
    declined = await charge_at_gateway(services, payment)
    assert declined.outcome == "declined"

    await reconciler_at(services, after_reconcile_delay(services, payment)).run_once()

    current = await stored(services, payment.id)
    assert current.status == PaymentStatus.FAILED
    assert (current.failure_code, current.failure_message) == (
        declined.failure_code,
        declined.failure_message,
    )
    assert current.next_recheck_at is None  # a "no" of the gateway needs no re-check
    assert await spent(services, payment) == OTHER_HOLD
    assert await ledger_of(services, payment.id) == []
    assert [e.type for e in await events_of(services, payment.id)] == [EventType.PAYMENT_FAILED]


@pytest.mark.parametrize("amount", [10_000, 10_503], ids=["never-sent", "gateway-503"])
async def test_a_payment_the_gateway_has_no_record_of_is_reversed_there_then_failed(
    services: Services, sandbox: Sandbox, new_payment: NewPayment, amount: int
) -> None:
    payment = await new_payment(amount)
    await hold_another(services, payment)
    if amount % 1000 == 503:
        assert (await charge_at_gateway(services, payment)).outcome == "unknown"
    assert await sandbox.charge_of(payment.id) is None

    await reconciler_at(services, after_reconcile_delay(services, payment)).run_once()

    charge = await sandbox.charge_of(payment.id)
    assert charge is not None
    assert charge["status"] == "reversed"
    current = await stored(services, payment.id)
    assert (current.status, current.failure_code) == (
        PaymentStatus.FAILED,
        FailureCode.NOT_CHARGED,
    )
    assert await spent(services, payment) == OTHER_HOLD
    assert await ledger_of(services, payment.id) == []
    assert [e.type for e in await events_of(services, payment.id)] == [EventType.PAYMENT_FAILED]


async def test_after_the_reversal_a_charge_that_arrives_late_is_refused(
    services: Services, sandbox: Sandbox, new_payment: NewPayment
) -> None:
    payment = await new_payment(10_000)
    await reconciler_at(services, after_reconcile_delay(services, payment)).run_once()

    late = await sandbox.request(
        "POST", "/v1/charges", {"paymentId": payment.id, "amount": payment.amount}
    )

    assert late.status_code == 409, late.text
    assert (await sandbox.stats())["chargesMade"] == 0


def silent_gateway(payment: Payment) -> dict[str, Fault]:
    lookup = f"/v1/charges/{payment.id}"
    reverse = f"/v1/charges/{payment.id}/reverse"
    return {
        "lookup-unreachable": raising(httpx.ConnectError, "GET", lookup),
        "lookup-times-out": hanging("GET", lookup),
        "lookup-answers-503": answering(503, "GET", lookup),
        "reverse-unreachable": raising(httpx.ConnectError, "POST", reverse),
        "reverse-times-out": hanging("POST", reverse),
        "reverse-answers-503": answering(503, "POST", reverse),
        "reverse-answers-404": answering(404, "POST", reverse),  # a gateway that cannot reverse
    }


@pytest.mark.parametrize(
    "silence",
    [
        "lookup-unreachable",
        "lookup-times-out",
        "lookup-answers-503",
        "reverse-unreachable",
        "reverse-times-out",
        "reverse-answers-503",
        "reverse-answers-404",
    ],
)
async def test_a_payment_the_gateway_gives_no_answer_for_stays_pending(
    services: Services, sandbox: Sandbox, new_payment: NewPayment, silence: str
) -> None:
    payment = await new_payment(10_000)
    sandbox.faults.append(silent_gateway(payment)[silence])
    clock = after_reconcile_delay(services, payment)

    await reconciler_at(services, clock).run_once()

    current = await stored(services, payment.id)
    assert current.status == PaymentStatus.PENDING
    assert current.version == payment.version
    assert await spent(services, payment) == payment.amount  # the hold stays taken
    assert await events_of(services, payment.id) == []
    assert await drafts_of(services, payment.id) == []
    assert await ledger_of(services, payment.id) == []
    assert await sandbox.charge_of(payment.id) is None  # nor was anything reversed

    # Once the gateway answers again, a later pass settles it.
    sandbox.faults.clear()
    clock.now += timedelta(seconds=workers.LEASE_SECONDS + 1)
    await reconciler_at(services, clock).run_once()
    assert (await stored(services, payment.id)).failure_code == FailureCode.NOT_CHARGED


async def test_a_payment_younger_than_reconcile_after_is_left_alone(
    services: Services, sandbox: Sandbox, new_payment: NewPayment
) -> None:
    payment = await new_payment(10_000)
    await charge_at_gateway(services, payment)
    due = after_reconcile_delay(services, payment).now
    clock = Clock(due - timedelta(milliseconds=1))

    assert await reconciler_at(services, clock).run_once() == 0

    assert (await stored(services, payment.id)).status == PaymentStatus.PENDING
    assert lookups_of(sandbox, payment) == []  # the gateway was not even asked

    clock.now = due + timedelta(milliseconds=1)
    assert await reconciler_at(services, clock).run_once() == 1
    assert (await stored(services, payment.id)).status == PaymentStatus.COMPLETED


# --- a reserved refund ------------------------------------------------------------------------


async def completed_payment(services: Services, new_payment: NewPayment, amount: int) -> Payment:
    payment = await new_payment(amount)
    charged = await charge_at_gateway(services, payment)
    assert charged.outcome == "approved"
    return await services.settlement.complete(payment, charged.transaction_id)


@pytest.mark.parametrize("reached", [False, True], ids=["never-sent", "answer-lost"])
async def test_a_reserved_refund_with_no_recorded_answer_is_asked_again_and_recorded(
    services: Services, sandbox: Sandbox, new_payment: NewPayment, reached: bool
) -> None:
    payment = await completed_payment(services, new_payment, 10_000)
    refund = await reserve_refund(services, payment, 4_000)
    if reached:  # the gateway refunded, and its answer was lost
        answer = await services.gateway.refund(
            payment_id=payment.id, refund_id=refund.id, amount=refund.amount
        )
        assert answer.outcome == "approved"
    reserved = await stored(services, payment.id)

    await reconciler_at(services, after_reconcile_delay(services, reserved)).run_once()

    assert (await sandbox.stats())["refundRequests"] == (2 if reached else 1)  # asked again
    charge = await sandbox.charge_of(payment.id)
    assert charge is not None
    assert charge["refundedAmount"] == 4_000  # once, not twice
    recorded = await refunds_model.find_by_id(services.database, refund.id)
    assert recorded is not None
    assert recorded.status == "succeeded"
    current = await stored(services, payment.id)
    assert (current.status, current.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, 4_000)
    assert current.pending_refunds == []
    assert sorted((r.type, r.amount) for r in await ledger_of(services, payment.id)) == [
        ("payment", 10_000),
        ("refund", 4_000),
    ]
    refunded = [e for e in await events_of(services, payment.id) if e.type == "payment.refunded"]
    assert [e.data["payment"]["refundedAmount"] for e in refunded] == [4_000]


async def test_a_reserved_refund_the_gateway_refuses_is_given_back_and_marked_failed(
    services: Services, sandbox: Sandbox, new_payment: NewPayment
) -> None:
    payment = await completed_payment(services, new_payment, 10_000)
    cancelled = await sandbox.request("POST", f"/v1/charges/{payment.id}/cancel")
    assert cancelled.status_code == 200  # so the sandbox refuses any refund of it
    refund = await reserve_refund(services, payment, 4_000)
    reserved = await stored(services, payment.id)

    await reconciler_at(services, after_reconcile_delay(services, reserved)).run_once()

    recorded = await refunds_model.find_by_id(services.database, refund.id)
    assert recorded is not None
    assert recorded.status == "failed"
    current = await stored(services, payment.id)
    assert (current.status, current.refunded_amount) == (PaymentStatus.COMPLETED, 0)
    assert current.pending_refunds == []
    assert [r.type for r in await ledger_of(services, payment.id)] == ["payment"]
    assert [e.type for e in await events_of(services, payment.id)] == [EventType.PAYMENT_COMPLETED]
