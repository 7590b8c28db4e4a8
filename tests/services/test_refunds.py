"""RefundService.refund and RefundSettlement, below HTTP: the payment's merchant or an active
admin refunds, never more than what is left; the payment's status follows what was refunded;
with an Idempotency-Key a refund is made once and replayed, while a refund that did not happen
lets its key try again; a lost gateway answer leaves the refund pending with its amount
reserved; recording the gateway's yes twice writes once.

The in-memory stand-in has no transactions, so these tests run the order-of-writes path."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from payments_api.config.constants import EventType, PaymentStatus, Role
from payments_api.models import refund as refunds_model
from payments_api.models.merchant import Merchant
from payments_api.models.payment import Payment, PendingRefund, public_view
from payments_api.models.refund import Refund
from payments_api.models.user import User
from payments_api.services.auth import Principal
from payments_api.services.idempotency import IdempotencyKeyReused
from payments_api.services.payment_failures import PaymentDeclined
from payments_api.services.payment_reads import PaymentNotFound
from payments_api.services.payments import NewPayment
from payments_api.services.refund_errors import (
    PaymentNotRefundable,
    RefundExceedsAvailable,
    RefundGatewayUnavailable,
    RefundNotAllowed,
)
from payments_api.services.refunds import RefundOutcome
from payments_api.services.registry import Services
from payments_api.utils import ids
from tests.services.conftest import (
    Fault,
    MakeMerchant,
    MakePayment,
    MakeUser,
    Sandbox,
    answer_lost,
    answering,
    events_of,
    forget_idempotency_keys,
    ledger_of,
    raising,
    reserve_refund,
    stored,
)

AMOUNT = 10_000
REASON = "Customer returned the item"
KEY = "refund-1"


@pytest.fixture
def as_merchant(merchant: Merchant) -> Principal:
    return Principal("merchant", merchant.id)


async def create(services: Services, user: User, merchant: Merchant, amount: int, key: str) -> None:
    await services.payments.create(
        user.id, key, NewPayment(amount, merchant.id, "card", "Coffee beans", "KRW")
    )


@pytest.fixture
async def payment(services: Services, user: User, merchant: Merchant) -> Payment:
    """A completed payment, charged at the sandbox (so the sandbox can refund it)."""
    created = await services.payments.create(
        user.id, "pay-1", NewPayment(AMOUNT, merchant.id, "card", "Coffee beans", "KRW")
    )
    assert created.payment.status == PaymentStatus.COMPLETED
    return created.payment


async def refund(
    services: Services,
    principal: Principal,
    payment: Payment,
    amount: int | None = None,
    *,
    key: str | None = None,
    reason: str = REASON,
) -> RefundOutcome:
    return await services.refunds.refund(
        principal, payment.id, amount=amount, reason=reason, key=key
    )


def refund_calls(sandbox: Sandbox) -> int:
    """Refund requests the services sent (reaching the sandbox or stopped by a fault)."""
    return sum(1 for call in sandbox.transport.calls if call.endswith("/refunds"))


async def refunds_of(services: Services, payment: Payment) -> list[Refund]:
    return await refunds_model.for_payment(services.database, payment.id)


async def refund_records(services: Services, payment: Payment) -> list[tuple[str, int]]:
    return [
        (r.reference, r.amount) for r in await ledger_of(services, payment.id) if r.type == "refund"
    ]


# --- refunding --------------------------------------------------------------------------------


async def test_a_full_refund_refunds_everything_and_the_payment_becomes_refunded(
    services: Services, sandbox: Sandbox, payment: Payment, as_merchant: Principal
) -> None:
    outcome = await refund(services, as_merchant, payment)

    assert outcome.replayed is False
    assert (outcome.refund.status, outcome.refund.amount) == ("succeeded", AMOUNT)
    current = await stored(services, payment.id)
    assert current.status == PaymentStatus.REFUNDED
    assert (current.refunded_amount, current.pending_refunds) == (AMOUNT, [])
    assert await refund_records(services, payment) == [(outcome.refund.id, AMOUNT)]
    refunded_events = [
        e for e in await events_of(services, payment.id) if e.type == EventType.PAYMENT_REFUNDED
    ]
    assert [e.data["payment"] for e in refunded_events] == [public_view(current)]
    charge = await sandbox.charge_of(payment.id)
    assert charge is not None
    assert charge["refundedAmount"] == AMOUNT


async def test_partial_refunds_leave_the_payment_partially_refunded_until_all_is_refunded(
    services: Services, sandbox: Sandbox, payment: Payment, as_merchant: Principal
) -> None:
    first = await refund(services, as_merchant, payment, 3_000)

    current = await stored(services, payment.id)
    assert first.refund.status == "succeeded"
    assert (current.status, current.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, 3_000)

    rest = await refund(services, as_merchant, payment)  # the amount defaults to what is left

    current = await stored(services, payment.id)
    assert rest.refund.amount == AMOUNT - 3_000
    assert (current.status, current.refunded_amount) == (PaymentStatus.REFUNDED, AMOUNT)
    assert await refund_records(services, payment) == [
        (first.refund.id, 3_000),
        (rest.refund.id, AMOUNT - 3_000),
    ]
    assert (await sandbox.charge_of(payment.id) or {})["refundedAmount"] == AMOUNT


@pytest.mark.parametrize(
    ("already", "asked", "available"),
    [(0, AMOUNT + 1, AMOUNT), (3_000, AMOUNT - 3_000 + 1, AMOUNT - 3_000)],
    ids=["nothing-refunded", "partly-refunded"],
)
async def test_a_refund_over_what_is_left_is_refused_with_the_available_amount(
    services: Services,
    sandbox: Sandbox,
    payment: Payment,
    as_merchant: Principal,
    already: int,
    asked: int,
    available: int,
) -> None:
    if already:
        await refund(services, as_merchant, payment, already)
    before = await stored(services, payment.id)
    calls = refund_calls(sandbox)

    with pytest.raises(RefundExceedsAvailable) as exceeds:
        await refund(services, as_merchant, payment, asked)

    assert exceeds.value.available_amount == available
    assert exceeds.value.extra == {"availableAmount": available}
    assert await stored(services, payment.id) == before
    assert len(await refunds_of(services, payment)) == (1 if already else 0)
    assert refund_calls(sandbox) == calls


async def test_a_refund_that_lost_the_race_for_what_is_left_is_refused_at_its_reservation(
    services: Services,
    sandbox: Sandbox,
    payment: Payment,
    as_merchant: Principal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both refunds pass the first look at the payment (6,000 of 10,000 each); the one that
    reserves second finds only 4,000 left."""
    recorded, go_on = asyncio.Event(), asyncio.Event()
    insert = refunds_model.insert

    async def held_after_recording(*args: Any, **kwargs: Any) -> None:
        await insert(*args, **kwargs)
        if not recorded.is_set():  # only the first refund waits
            recorded.set()
            await go_on.wait()

    monkeypatch.setattr(refunds_model, "insert", held_after_recording)
    slow = asyncio.create_task(refund(services, as_merchant, payment, 6_000))
    await asyncio.wait_for(recorded.wait(), timeout=5)

    fast = await refund(services, as_merchant, payment, 6_000)
    go_on.set()
    with pytest.raises(RefundExceedsAvailable) as exceeds:
        await slow

    assert fast.refund.status == "succeeded"
    assert exceeds.value.available_amount == AMOUNT - 6_000
    current = await stored(services, payment.id)
    assert (current.refunded_amount, current.pending_refunds) == (6_000, [])
    assert [r.id for r in await refunds_of(services, payment)] == [fast.refund.id]
    assert refund_calls(sandbox) == 1
    assert (await sandbox.charge_of(payment.id) or {})["refundedAmount"] == 6_000


async def _cancelled(services: Services, payment: Payment) -> None:
    await services.cancellations.cancel(
        Principal("user", payment.user_id), payment.id, "Ordered by mistake"
    )


async def _refunded(services: Services, payment: Payment) -> None:
    await refund(services, Principal("merchant", payment.merchant_id), payment)


@pytest.mark.parametrize("status", ["pending", "failed", "cancelled", "refunded"])
async def test_a_payment_not_completed_or_partially_refunded_is_not_refundable(
    services: Services,
    sandbox: Sandbox,
    user: User,
    merchant: Merchant,
    payment: Payment,
    make_pending_payment: MakePayment,
    as_merchant: Principal,
    status: str,
) -> None:
    if status == "pending":
        target = await make_pending_payment(user, merchant)
    elif status == "failed":
        with pytest.raises(PaymentDeclined) as declined:
            await create(services, user, merchant, 10_402, key="declined")
        target = declined.value.payment
    else:
        await (_cancelled if status == "cancelled" else _refunded)(services, payment)
        target = payment
    assert (await stored(services, target.id)).status == status
    calls = refund_calls(sandbox)
    refunds_before = len(await refunds_of(services, target))

    with pytest.raises(PaymentNotRefundable):
        await refund(services, as_merchant, target, 1_000)

    assert refund_calls(sandbox) == calls
    assert len(await refunds_of(services, target)) == refunds_before


# --- who may refund ---------------------------------------------------------------------------


async def test_the_payer_may_not_refund_their_own_payment(
    services: Services, sandbox: Sandbox, payment: Payment
) -> None:
    with pytest.raises(RefundNotAllowed) as refused:
        await refund(services, Principal("user", payment.user_id), payment)

    assert refused.value.status_code == 403
    assert (await stored(services, payment.id)).refunded_amount == 0
    assert refund_calls(sandbox) == 0


@pytest.mark.parametrize("who", ["other-merchant", "other-user", "deactivated-admin"])
async def test_anyone_else_is_told_the_payment_does_not_exist(
    services: Services,
    sandbox: Sandbox,
    payment: Payment,
    make_user: MakeUser,
    make_merchant: MakeMerchant,
    who: str,
) -> None:
    if who == "other-merchant":
        principal = Principal("merchant", (await make_merchant()).id)
    elif who == "other-user":
        principal = Principal("user", (await make_user()).id)
    else:
        principal = Principal("user", (await make_user(role=Role.ADMIN, is_active=False)).id)

    with pytest.raises(PaymentNotFound):
        await refund(services, principal, payment)

    assert (await stored(services, payment.id)).refunded_amount == 0
    assert refund_calls(sandbox) == 0


async def test_an_unknown_payment_is_not_found(services: Services, as_merchant: Principal) -> None:
    with pytest.raises(PaymentNotFound):
        await services.refunds.refund(
            as_merchant, ids.payment_id(), amount=None, reason=REASON, key=None
        )


async def test_an_active_admin_refunds_any_payment(
    services: Services, payment: Payment, make_user: MakeUser
) -> None:
    admin = await make_user(role=Role.ADMIN)

    outcome = await refund(services, Principal("user", admin.id), payment, 1_000)

    assert outcome.refund.status == "succeeded"
    assert outcome.refund.requested_by == f"user:{admin.id}"
    assert (await stored(services, payment.id)).refunded_amount == 1_000


# --- with an Idempotency-Key ------------------------------------------------------------------


async def test_a_key_replays_its_refund_without_a_second_gateway_refund(
    services: Services, sandbox: Sandbox, payment: Payment, as_merchant: Principal
) -> None:
    first = await refund(services, as_merchant, payment, 3_000, key=KEY)

    again = await refund(services, as_merchant, payment, 3_000, key=KEY)

    assert (first.replayed, again.replayed) == (False, True)
    assert again.refund.id == first.refund.id
    assert again.refund.status == "succeeded"
    assert refund_calls(sandbox) == 1
    assert (await stored(services, payment.id)).refunded_amount == 3_000
    assert await refund_records(services, payment) == [(first.refund.id, 3_000)]


async def test_a_key_used_with_another_body_is_refused(
    services: Services, sandbox: Sandbox, payment: Payment, as_merchant: Principal
) -> None:
    await refund(services, as_merchant, payment, 3_000, key=KEY)

    with pytest.raises(IdempotencyKeyReused):
        await refund(services, as_merchant, payment, 4_000, key=KEY)

    assert refund_calls(sandbox) == 1
    assert (await stored(services, payment.id)).refunded_amount == 3_000


async def test_a_key_redis_forgot_is_replayed_from_the_database(
    services: Services, sandbox: Sandbox, payment: Payment, as_merchant: Principal
) -> None:
    first = await refund(services, as_merchant, payment, 3_000, key=KEY)
    assert await forget_idempotency_keys(services) >= 1

    again = await refund(services, as_merchant, payment, 3_000, key=KEY)

    assert again.replayed is True
    assert again.refund.id == first.refund.id
    assert refund_calls(sandbox) == 1
    assert (await stored(services, payment.id)).refunded_amount == 3_000


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (answering(409, "POST", "/refunds"), PaymentNotRefundable),
        (raising(httpx.ConnectError, "POST", "/refunds"), RefundGatewayUnavailable),
    ],
    ids=["refused", "unreachable"],
)
async def test_a_refund_that_did_not_happen_gives_its_reservation_back_and_its_key_tries_again(
    services: Services,
    sandbox: Sandbox,
    payment: Payment,
    as_merchant: Principal,
    fault: Fault,
    error: type[Exception],
) -> None:
    sandbox.faults.append(fault)

    with pytest.raises(error):
        await refund(services, as_merchant, payment, 3_000, key=KEY)

    [failed] = await refunds_of(services, payment)
    assert failed.status == "failed"
    assert failed.failure_code == "GATEWAY_REFUSED"
    current = await stored(services, payment.id)
    assert current.status == PaymentStatus.COMPLETED
    assert (current.refunded_amount, current.pending_refunds) == (0, [])
    assert await refund_records(services, payment) == []

    sandbox.faults.remove(fault)
    retried = await refund(services, as_merchant, payment, 3_000, key=KEY)

    assert retried.replayed is False
    assert retried.refund.id != failed.id
    assert retried.refund.status == "succeeded"
    assert refund_calls(sandbox) == 2
    assert (await stored(services, payment.id)).refunded_amount == 3_000


async def test_a_lost_gateway_answer_leaves_the_refund_pending_with_its_amount_reserved(
    services: Services, sandbox: Sandbox, payment: Payment, as_merchant: Principal
) -> None:
    sandbox.faults.append(answer_lost(sandbox, "POST", "/refunds"))

    outcome = await refund(services, as_merchant, payment, 3_000, key=KEY)

    assert outcome.replayed is False
    assert outcome.refund.status == "pending"
    assert (await refunds_model.find_by_id(services.database, outcome.refund.id)) == outcome.refund
    current = await stored(services, payment.id)
    assert current.status == PaymentStatus.COMPLETED
    assert current.refunded_amount == 3_000
    assert current.pending_refunds == [PendingRefund(refund_id=outcome.refund.id, amount=3_000)]
    assert public_view(current)["refundedAmount"] == 0  # nothing refunded for certain yet
    assert await refund_records(services, payment) == []
    # The reserved amount is not available to another refund...
    with pytest.raises(RefundExceedsAvailable) as exceeds:
        await refund(services, as_merchant, payment, AMOUNT - 3_000 + 1)
    assert exceeds.value.available_amount == AMOUNT - 3_000
    # ... and the key answers with the pending refund, without asking the gateway again.
    again = await refund(services, as_merchant, payment, 3_000, key=KEY)
    assert (again.replayed, again.refund.id, again.refund.status) == (
        True,
        outcome.refund.id,
        "pending",
    )
    assert refund_calls(sandbox) == 1


async def test_a_pending_refund_that_failed_afterwards_lets_its_key_try_again(
    services: Services, sandbox: Sandbox, payment: Payment, as_merchant: Principal
) -> None:
    fault = raising(httpx.ReadTimeout, "POST", "/refunds")
    sandbox.faults.append(fault)
    pending = await refund(services, as_merchant, payment, 3_000, key=KEY)
    assert pending.refund.status == "pending"
    # As reconciliation records the gateway's no later on:
    await services.refund_settlement.release(payment, pending.refund, "GATEWAY_REFUSED")
    sandbox.faults.remove(fault)

    retried = await refund(services, as_merchant, payment, 3_000, key=KEY)

    assert retried.replayed is False
    assert retried.refund.id != pending.refund.id
    assert retried.refund.status == "succeeded"
    current = await stored(services, payment.id)
    assert (current.status, current.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, 3_000)


# --- RefundSettlement -------------------------------------------------------------------------


async def test_succeed_twice_writes_one_ledger_record_and_one_event(
    services: Services, payment: Payment
) -> None:
    reserved = await reserve_refund(services, payment, 3_000)

    await services.refund_settlement.succeed(payment, reserved)
    await services.refund_settlement.succeed(payment, reserved)

    assert await refund_records(services, payment) == [(reserved.id, 3_000)]
    refunded_events = [
        e for e in await events_of(services, payment.id) if e.type == EventType.PAYMENT_REFUNDED
    ]
    current = await stored(services, payment.id)
    assert [e.data["payment"] for e in refunded_events] == [public_view(current)]
    assert (current.status, current.refunded_amount, current.pending_refunds) == (
        PaymentStatus.PARTIALLY_REFUNDED,
        3_000,
        [],
    )
    found = await refunds_model.find_by_id(services.database, reserved.id)
    assert found is not None
    assert found.status == "succeeded"


async def test_a_second_succeed_answers_the_refund_as_recorded(
    services: Services, payment: Payment
) -> None:
    reserved = await reserve_refund(services, payment, 3_000)
    await services.refund_settlement.succeed(payment, reserved)

    again = await services.refund_settlement.succeed(payment, reserved)

    assert again.status == "succeeded"


async def test_release_gives_back_only_its_refund_once_and_sets_the_status_of_what_is_left(
    services: Services, payment: Payment
) -> None:
    kept = await reserve_refund(services, payment, 3_000)
    await services.refund_settlement.succeed(payment, kept)
    given_back = await reserve_refund(services, payment, 2_000)

    await services.refund_settlement.release(payment, given_back, "GATEWAY_REFUSED")
    await services.refund_settlement.release(payment, given_back, "GATEWAY_REFUSED")

    current = await stored(services, payment.id)
    assert (current.status, current.refunded_amount, current.pending_refunds) == (
        PaymentStatus.PARTIALLY_REFUNDED,
        3_000,
        [],
    )
    found = await refunds_model.find_by_id(services.database, given_back.id)
    assert found is not None
    assert (found.status, found.failure_code) == ("failed", "GATEWAY_REFUSED")
    assert await refund_records(services, payment) == [(kept.id, 3_000)]


async def test_releasing_the_only_refund_makes_the_payment_completed_again(
    services: Services, payment: Payment
) -> None:
    reserved = await reserve_refund(services, payment, AMOUNT)

    await services.refund_settlement.release(payment, reserved, "GATEWAY_REFUSED")

    current = await stored(services, payment.id)
    assert (current.status, current.refunded_amount) == (PaymentStatus.COMPLETED, 0)
    assert [e.type for e in await events_of(services, payment.id)] == [EventType.PAYMENT_COMPLETED]
