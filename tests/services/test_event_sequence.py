"""The sequence of a payment's events below HTTP, where the tests can stop a step between any two
writes: a refund's success that lost its compare-and-set to another refund tries again with the
next number, and if it dies after winning, the draft it left describes the try that won; a
reservation given back changes no status and takes no number; a repeated step writes nothing.

The in-memory stand-in has no transactions, so these tests run the order-of-writes path."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.models import event as events_model
from payments_api.models import payment as payments_model
from payments_api.models.merchant import Merchant
from payments_api.models.payment import CANCEL_REFERENCE, Payment, PendingRefund
from payments_api.models.user import User
from payments_api.services.auth import Principal
from payments_api.services.payments import NewPayment
from payments_api.services.registry import Services
from payments_api.utils.clock import utcnow
from tests.fixtures.races import started_until_there
from tests.services.conftest import (
    Clock,
    ProcessDied,
    drafts_of,
    events_of,
    reconciler_at,
    reserve_refund,
    stored,
)

AMOUNT = 10_000


@pytest.fixture
async def payment(services: Services, user: User, merchant: Merchant) -> Payment:
    """A completed payment (its event: sequence 1), charged at the sandbox."""
    created = await services.payments.create(
        user.id, "sequence-1", NewPayment(AMOUNT, merchant.id, "card", "Coffee beans", "KRW")
    )
    assert created.payment.status == PaymentStatus.COMPLETED
    return created.payment


async def told(services: Services, payment: Payment) -> list[tuple[int, str, str, int]]:
    """(sequence, previousStatus, status, refundedAmount) of each published event, in order."""
    events = sorted(await events_of(services, payment.id), key=lambda e: e.data["sequence"])
    return [
        (
            e.data["sequence"],
            e.data["previousStatus"],
            e.data["payment"]["status"],
            e.data["payment"]["refundedAmount"],
        )
        for e in events
    ]


async def test_a_success_that_lost_to_another_refund_then_died_is_published_as_it_won(
    services: Services, payment: Payment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its first try read the payment at sequence 1 and wrote its draft for 2; refund `first`
    then took 2, so the compare-and-set missed; the second try wrote its draft for 3, won, and
    the process died before publishing. What reconciliation publishes is the second try."""
    late = await reserve_refund(services, payment, 3_000)
    first = await reserve_refund(services, payment, 2_000)
    update_where = payments_model.update_where
    publish_draft = events_model.publish_draft
    overtaken = False

    async def first_goes_between(*args: Any, **kwargs: Any) -> Any:
        nonlocal overtaken
        expected = args[2]
        if not overtaken and expected.get("pendingRefunds.refundId") == late.id:
            overtaken = True
            await services.refund_settlement.succeed(payment, first)
        return await update_where(*args, **kwargs)

    async def dies_publishing_late(*args: Any, **kwargs: Any) -> Any:
        if late.id in args[1]:
            raise ProcessDied("publish_draft")
        return await publish_draft(*args, **kwargs)

    monkeypatch.setattr(payments_model, "update_where", first_goes_between)
    monkeypatch.setattr(events_model, "publish_draft", dies_publishing_late)
    with pytest.raises(ProcessDied):
        await services.refund_settlement.succeed(payment, late)
    monkeypatch.undo()
    [draft] = await drafts_of(services, payment.id)
    assert (draft.data["sequence"], draft.data["previousStatus"]) == (3, "partially_refunded")

    later = utcnow() + timedelta(seconds=services.settings.reconcile_after_seconds + 1)
    await reconciler_at(services, Clock(later)).run_once()

    assert await told(services, payment) == [
        (1, "pending", "completed", 0),
        (2, "completed", "partially_refunded", 2_000),
        (3, "partially_refunded", "partially_refunded", 5_000),
    ]
    assert await drafts_of(services, payment.id) == []


async def test_a_slow_try_that_read_an_older_payment_never_rewrites_the_winners_draft(
    services: Services, payment: Payment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two settlements of one refund (the request and the reconciler): the slow one read the
    payment at sequence 1 and writes its draft only after the other — which read it after
    refund `first` took 2 — won with 3 and died before publishing. The draft keeps 3."""
    late = await reserve_refund(services, payment, 3_000)
    first = await reserve_refund(services, payment, 2_000)
    save_draft = events_model.save_draft
    publish_draft = events_model.publish_draft
    slow_is_waiting = asyncio.Event()
    winner_died = asyncio.Event()
    calls = 0

    async def first_call_waits(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            slow_is_waiting.set()
            await winner_died.wait()
        return await save_draft(*args, **kwargs)

    async def dies_publishing_late(*args: Any, **kwargs: Any) -> Any:
        if late.id in args[1]:
            raise ProcessDied("publish_draft")
        return await publish_draft(*args, **kwargs)

    monkeypatch.setattr(events_model, "save_draft", first_call_waits)
    monkeypatch.setattr(events_model, "publish_draft", dies_publishing_late)
    slow = await started_until_there(
        services.refund_settlement.succeed(payment, late), slow_is_waiting, "the slow try"
    )
    await services.refund_settlement.succeed(payment, first)
    with pytest.raises(ProcessDied):
        await services.refund_settlement.succeed(payment, late)
    winner_died.set()
    await slow
    monkeypatch.undo()

    later = utcnow() + timedelta(seconds=services.settings.reconcile_after_seconds + 1)
    await reconciler_at(services, Clock(later)).run_once()

    assert await told(services, payment) == [
        (1, "pending", "completed", 0),
        (2, "completed", "partially_refunded", 2_000),
        (3, "partially_refunded", "partially_refunded", 5_000),
    ]


async def test_a_success_while_another_refund_is_reserved_counts_only_what_was_refunded(
    services: Services, payment: Payment
) -> None:
    """The status follows what is refunded for certain: a success beside a reservation still
    awaiting the gateway is partially_refunded, and giving that reservation back changes no
    status, so it needs (and gets) no event."""
    kept = await reserve_refund(services, payment, 3_000)
    given_back = await reserve_refund(services, payment, AMOUNT - 3_000)

    await services.refund_settlement.succeed(payment, kept)
    await services.refund_settlement.release(payment, given_back, "GATEWAY_REFUSED")
    rest = await reserve_refund(services, payment, AMOUNT - 3_000)
    await services.refund_settlement.succeed(payment, rest)

    assert await told(services, payment) == [
        (1, "pending", "completed", 0),
        (2, "completed", "partially_refunded", 3_000),
        (3, "partially_refunded", "refunded", AMOUNT),
    ]
    assert (await stored(services, payment.id)).status == PaymentStatus.REFUNDED


async def test_a_repeated_step_writes_no_event_and_takes_no_number(
    services: Services, payment: Payment
) -> None:
    reserved = await reserve_refund(services, payment, 3_000)
    await services.refund_settlement.succeed(payment, reserved)
    await services.refund_settlement.succeed(payment, reserved)
    await services.settlement.complete(payment, "gtx_again")  # no longer pending: nothing
    again = await reserve_refund(services, payment, 1_000)
    await services.refund_settlement.succeed(payment, again)

    assert [t[0] for t in await told(services, payment)] == [1, 2, 3]
    refunded = [
        e for e in await events_of(services, payment.id) if e.type == EventType.PAYMENT_REFUNDED
    ]
    assert len(refunded) == 2


async def test_a_cancel_finished_again_by_a_racing_retry_takes_no_second_number(
    services: Services, payment: Payment, user: User
) -> None:
    reserved = payment.model_copy(  # the payment as both attempts read it: cancel reserved
        update={
            "refunded_amount": AMOUNT,
            "pending_refunds": [PendingRefund(refund_id=CANCEL_REFERENCE, amount=AMOUNT)],
        }
    )
    await services.cancellations.cancel(Principal("user", user.id), payment.id, "Changed my mind")

    again = await services.cancellations.finish_cancel(reserved, "Changed my mind")

    assert again.status == PaymentStatus.CANCELLED
    assert await told(services, payment) == [
        (1, "pending", "completed", 0),
        (2, "completed", "cancelled", AMOUNT),
    ]
