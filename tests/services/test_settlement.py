"""SettlementService: a pending payment becomes `completed` or `failed` once, with exactly the
records of the outcome that won (ledger record, event, daily-limit release, user stats); a
settlement that died half-way is finished or discarded by `recover_draft`, never twice.

The in-memory stand-in has no transactions, so these tests run the order-of-writes path that
a deployment without transactions relies on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from payments_api.config.constants import EventType, FailureCode, PaymentStatus
from payments_api.models import daily_limit as daily_limit_model
from payments_api.models import event as events_model
from payments_api.models import payment as payments_model
from payments_api.models.merchant import Merchant
from payments_api.models.payment import Payment, public_view
from payments_api.models.user import User
from payments_api.services import settlement as settlement_module
from payments_api.services.gateway import GatewayResult, Outcome
from payments_api.services.registry import Services
from tests.services.conftest import (
    MakePayment,
    ProcessDied,
    die_once,
    drafts_of,
    events_of,
    ledger_of,
    stored,
    stored_user,
    streamed_events,
)

AMOUNT = 10_000
OTHER_AMOUNT = 3_000


@pytest.fixture
async def payment(make_pending_payment: MakePayment, user: User, merchant: Merchant) -> Payment:
    return await make_pending_payment(user, merchant, AMOUNT)


@pytest.fixture
async def other_payment(
    make_pending_payment: MakePayment, user: User, merchant: Merchant, payment: Payment
) -> Payment:
    """Another pending payment of the same user on the same business day: its hold must stay
    whatever happens to `payment`, so a release given twice would show in `spent`."""
    other = await make_pending_payment(user, merchant, OTHER_AMOUNT)
    assert other.hold_day == payment.hold_day
    return other


async def spent(services: Services, payment: Payment) -> int:
    return await services.limits.spent(payment.user_id, payment.hold_day)


async def stored_event_count(services: Services, payment_id: str) -> int:
    """Every event document of the payment, drafts included."""
    count: int = await services.database[events_model.COLLECTION].count_documents(
        {"paymentId": payment_id}
    )
    return count


# --- complete ---------------------------------------------------------------------------------


async def test_complete_sets_completed_with_the_gateway_transaction(
    services: Services, payment: Payment
) -> None:
    result = await services.settlement.complete(payment, "gtx_approved")

    current = await stored(services, payment.id)
    assert current.status == PaymentStatus.COMPLETED
    assert current.transaction_id == "gtx_approved"
    assert current.completed_at is not None
    assert public_view(result) == public_view(current)


async def test_complete_writes_exactly_one_payment_ledger_record_of_the_amount(
    services: Services, payment: Payment
) -> None:
    await services.settlement.complete(payment, "gtx_1")

    records = await ledger_of(services, payment.id)
    assert [(r.type, r.reference, r.amount) for r in records] == [("payment", payment.id, AMOUNT)]
    assert (records[0].user_id, records[0].merchant_id) == (payment.user_id, payment.merchant_id)


async def test_complete_publishes_one_completed_event_showing_the_stored_payment(
    services: Services, payment: Payment
) -> None:
    await services.settlement.complete(payment, "gtx_1")

    [event] = await events_of(services, payment.id)
    assert event.type == EventType.PAYMENT_COMPLETED
    assert event.status == "pending"  # published: a dispatcher may take it
    assert event.data["payment"] == public_view(await stored(services, payment.id))
    assert await drafts_of(services, payment.id) == []


async def test_the_completed_event_reaches_the_stream_once(
    services: Services, payment: Payment
) -> None:
    await services.settlement.complete(payment, "gtx_1")
    await services.dispatcher.run_once()
    await services.dispatcher.run_once()

    entries = await streamed_events(services, payment.id)
    assert [entry["type"] for entry in entries] == ["payment.completed"]


async def test_complete_counts_the_payment_in_the_users_stats_once(
    services: Services, payment: Payment
) -> None:
    await services.settlement.complete(payment, "gtx_1")

    stats = (await stored_user(services, payment.user_id)).stats
    assert (stats.total_transactions, stats.total_amount) == (1, AMOUNT)
    assert stats.last_transaction_at is not None


async def test_complete_keeps_the_daily_limit_hold(
    services: Services, payment: Payment, other_payment: Payment
) -> None:
    await services.settlement.complete(payment, "gtx_1")

    assert await spent(services, payment) == AMOUNT + OTHER_AMOUNT


# --- fail -------------------------------------------------------------------------------------


async def test_fail_records_the_failure_code_and_message(
    services: Services, payment: Payment
) -> None:
    result = await services.settlement.fail(payment, "CARD_DECLINED", "The card was declined")

    current = await stored(services, payment.id)
    assert current.status == PaymentStatus.FAILED
    assert (current.failure_code, current.failure_message) == (
        "CARD_DECLINED",
        "The card was declined",
    )
    assert public_view(result) == public_view(current)


async def test_fail_releases_the_payments_hold_once_and_only_its_own(
    services: Services, payment: Payment, other_payment: Payment
) -> None:
    assert await spent(services, payment) == AMOUNT + OTHER_AMOUNT

    await services.settlement.fail(payment, "CARD_DECLINED", "The card was declined")

    assert await spent(services, payment) == OTHER_AMOUNT
    assert await services.limits.release(payment) is False  # nothing of it is left to give


async def test_fail_publishes_one_failed_event_and_writes_no_ledger_record(
    services: Services, payment: Payment
) -> None:
    await services.settlement.fail(payment, "CARD_DECLINED", "The card was declined")

    [event] = await events_of(services, payment.id)
    assert event.type == EventType.PAYMENT_FAILED
    assert event.data["payment"] == public_view(await stored(services, payment.id))
    assert await drafts_of(services, payment.id) == []
    assert await ledger_of(services, payment.id) == []
    assert (await stored_user(services, payment.user_id)).stats.total_transactions == 0


@pytest.mark.parametrize("code", [FailureCode.GATEWAY_UNAVAILABLE, FailureCode.NOT_CHARGED])
async def test_a_failure_no_gateway_no_stands_behind_is_scheduled_for_a_recheck(
    services: Services, payment: Payment, code: str
) -> None:
    await services.settlement.fail(payment, code, "No answer from the gateway")

    current = await stored(services, payment.id)
    first_recheck = timedelta(seconds=services.settings.reconcile_after_seconds)
    assert current.next_recheck_at == current.updated_at + first_recheck
    assert current.recheck_until == current.updated_at + timedelta(hours=24)


async def test_a_decline_is_not_rechecked(services: Services, payment: Payment) -> None:
    await services.settlement.fail(payment, "CARD_DECLINED", "The card was declined")

    current = await stored(services, payment.id)
    assert (current.next_recheck_at, current.recheck_until) == (None, None)


# --- settle: what the gateway said ------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "status", "code"),
    [
        (GatewayResult("approved", transaction_id="gtx_9"), PaymentStatus.COMPLETED, None),
        (
            GatewayResult("declined", failure_code="INSUFFICIENT_FUNDS", failure_message="No"),
            PaymentStatus.FAILED,
            "INSUFFICIENT_FUNDS",
        ),
        (GatewayResult("reversed"), PaymentStatus.FAILED, FailureCode.NOT_CHARGED),
    ],
    ids=["approved", "declined", "reversed"],
)
async def test_settle_follows_the_gateways_answer(
    services: Services,
    payment: Payment,
    result: GatewayResult,
    status: PaymentStatus,
    code: str | None,
) -> None:
    settled = await services.settlement.settle(payment, result)

    assert settled is not None
    current = await stored(services, payment.id)
    assert (current.status, current.failure_code) == (status, code)


@pytest.mark.parametrize("outcome", ["unknown", "not_found", "unreachable"])
async def test_settle_leaves_the_payment_pending_for_anything_but_an_answer(
    services: Services, payment: Payment, outcome: Outcome
) -> None:
    assert await services.settlement.settle(payment, GatewayResult(outcome)) is None

    current = await stored(services, payment.id)
    assert current.status == PaymentStatus.PENDING
    assert current.version == payment.version
    assert await stored_event_count(services, payment.id) == 0
    assert await ledger_of(services, payment.id) == []
    assert await spent(services, payment) == AMOUNT


# --- a second settlement ----------------------------------------------------------------------


async def _complete(services: Services, payment: Payment) -> Payment:
    return await services.settlement.complete(payment, "gtx_1")


async def _fail(services: Services, payment: Payment) -> Payment:
    return await services.settlement.fail(payment, "CARD_DECLINED", "The card was declined")


SETTLERS = {"complete": _complete, "fail": _fail}
OUTCOMES = {"complete": PaymentStatus.COMPLETED, "fail": PaymentStatus.FAILED}


@pytest.mark.parametrize(
    ("first", "second"),
    [("complete", "fail"), ("fail", "complete"), ("complete", "complete"), ("fail", "fail")],
)
async def test_a_second_settlement_returns_the_first_outcome_and_writes_nothing(
    services: Services, payment: Payment, other_payment: Payment, first: str, second: str
) -> None:
    settled = await SETTLERS[first](services, payment)
    again = await SETTLERS[second](services, payment)

    assert again.status == settled.status == OUTCOMES[first]
    assert public_view(again) == public_view(await stored(services, payment.id))
    # Only the first settlement's records: no second record, event or draft, no second
    # release or count.
    records = [(r.type, r.amount) for r in await ledger_of(services, payment.id)]
    [event] = await events_of(services, payment.id)
    assert await stored_event_count(services, payment.id) == 1
    stats = (await stored_user(services, payment.user_id)).stats
    if first == "complete":
        assert records == [("payment", AMOUNT)]
        assert event.type == EventType.PAYMENT_COMPLETED
        assert await spent(services, payment) == AMOUNT + OTHER_AMOUNT
        assert (stats.total_transactions, stats.total_amount) == (1, AMOUNT)
    else:
        assert records == []
        assert event.type == EventType.PAYMENT_FAILED
        assert await spent(services, payment) == OTHER_AMOUNT
        assert stats.total_transactions == 0


# --- a settlement that died half-way ----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "name", "after"),
    [(payments_model, "update_where", True), (events_model, "publish_draft", False)],
    ids=["right-after-compare-and-set", "before-publishing"],
)
async def test_a_completion_that_died_after_winning_is_finished_once_by_recover_draft(
    services: Services,
    payment: Payment,
    monkeypatch: pytest.MonkeyPatch,
    model: object,
    name: str,
    after: bool,
) -> None:
    die_once(monkeypatch, model, name, after=after)
    with pytest.raises(ProcessDied):
        await services.settlement.complete(payment, "gtx_1")
    assert (await stored(services, payment.id)).status == PaymentStatus.COMPLETED
    assert await events_of(services, payment.id) == []  # nobody is told yet
    [draft] = await drafts_of(services, payment.id)

    await services.settlement.recover_draft(draft)
    await services.settlement.recover_draft(draft)  # a second recovery changes nothing

    [event] = await events_of(services, payment.id)
    assert event.type == EventType.PAYMENT_COMPLETED
    assert event.data["payment"] == public_view(await stored(services, payment.id))
    assert await drafts_of(services, payment.id) == []
    assert [(r.type, r.amount) for r in await ledger_of(services, payment.id)] == [
        ("payment", AMOUNT)
    ]
    stats = (await stored_user(services, payment.user_id)).stats
    assert (stats.total_transactions, stats.total_amount) == (1, AMOUNT)


@pytest.mark.parametrize(
    ("model", "name"),
    [(daily_limit_model, "release"), (events_model, "publish_draft")],
    ids=["before-the-release", "before-publishing"],
)
async def test_a_failure_that_died_after_winning_is_finished_once_by_recover_draft(
    services: Services,
    payment: Payment,
    other_payment: Payment,
    monkeypatch: pytest.MonkeyPatch,
    model: object,
    name: str,
) -> None:
    die_once(monkeypatch, model, name)
    with pytest.raises(ProcessDied):
        await services.settlement.fail(payment, "CARD_DECLINED", "The card was declined")
    assert (await stored(services, payment.id)).status == PaymentStatus.FAILED
    assert await events_of(services, payment.id) == []
    [draft] = await drafts_of(services, payment.id)

    await services.settlement.recover_draft(draft)
    await services.settlement.recover_draft(draft)

    [event] = await events_of(services, payment.id)
    assert event.type == EventType.PAYMENT_FAILED
    assert event.data["payment"] == public_view(await stored(services, payment.id))
    assert await drafts_of(services, payment.id) == []
    assert await spent(services, payment) == OTHER_AMOUNT  # given back, and only once
    assert await ledger_of(services, payment.id) == []


async def test_recover_draft_leaves_a_payment_still_pending_to_the_pending_pass(
    services: Services, payment: Payment, monkeypatch: pytest.MonkeyPatch
) -> None:
    die_once(monkeypatch, payments_model, "update_where")  # before the compare-and-set
    with pytest.raises(ProcessDied):
        await services.settlement.complete(payment, "gtx_1")
    [draft] = await drafts_of(services, payment.id)

    await services.settlement.recover_draft(draft)

    # The completion may still win (the gateway may have charged): nothing is undone yet.
    assert (await stored(services, payment.id)).status == PaymentStatus.PENDING
    assert await drafts_of(services, payment.id) == [draft]
    assert [r.type for r in await ledger_of(services, payment.id)] == ["payment"]
    assert await events_of(services, payment.id) == []


async def test_a_completion_retried_after_dying_before_its_compare_and_set_writes_once(
    services: Services, payment: Payment, monkeypatch: pytest.MonkeyPatch
) -> None:
    die_once(monkeypatch, payments_model, "update_where")
    with pytest.raises(ProcessDied):
        await services.settlement.complete(payment, "gtx_1")

    await services.settlement.complete(payment, "gtx_1")  # as reconciliation settles it

    [event] = await events_of(services, payment.id)
    assert event.type == EventType.PAYMENT_COMPLETED
    assert await drafts_of(services, payment.id) == []
    assert [(r.type, r.amount) for r in await ledger_of(services, payment.id)] == [
        ("payment", AMOUNT)
    ]
    assert (await stored_user(services, payment.user_id)).stats.total_transactions == 1


async def test_a_failure_clears_what_a_completion_that_died_before_its_compare_and_set_left(
    services: Services,
    payment: Payment,
    other_payment: Payment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    die_once(monkeypatch, payments_model, "update_where")
    with pytest.raises(ProcessDied):
        await services.settlement.complete(payment, "gtx_unconfirmed")
    assert [r.type for r in await ledger_of(services, payment.id)] == ["payment"]

    await services.settlement.fail(payment, FailureCode.NOT_CHARGED, "Reversed at the gateway")

    assert await ledger_of(services, payment.id) == []
    [event] = await events_of(services, payment.id)
    assert event.type == EventType.PAYMENT_FAILED
    assert await stored_event_count(services, payment.id) == 1  # the dead draft is gone
    assert await spent(services, payment) == OTHER_AMOUNT


async def test_the_draft_of_a_failure_that_died_and_then_lost_is_discarded(
    services: Services, payment: Payment, monkeypatch: pytest.MonkeyPatch
) -> None:
    die_once(monkeypatch, payments_model, "update_where")
    with pytest.raises(ProcessDied):
        await services.settlement.fail(payment, FailureCode.NOT_CHARGED, "Reversed")
    await services.settlement.complete(payment, "gtx_won")
    [dead_draft] = await drafts_of(services, payment.id)
    assert dead_draft.type == EventType.PAYMENT_FAILED

    await services.settlement.recover_draft(dead_draft)

    assert await drafts_of(services, payment.id) == []
    [event] = await events_of(services, payment.id)
    assert event.type == EventType.PAYMENT_COMPLETED
    assert [r.type for r in await ledger_of(services, payment.id)] == ["payment"]
    assert await spent(services, payment) == AMOUNT  # the completion's hold stays taken


async def test_a_completion_retried_after_dying_publishes_the_payment_as_stored(
    services: Services, payment: Payment, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_attempt = payment.created_at + timedelta(seconds=1)
    retry = first_attempt + timedelta(seconds=services.settings.reconcile_after_seconds)
    times = iter([first_attempt, retry])
    monkeypatch.setattr(settlement_module, "utcnow", lambda: next(times))
    die_once(monkeypatch, payments_model, "update_where")
    with pytest.raises(ProcessDied):
        await services.settlement.complete(payment, "gtx_1")

    await services.settlement.complete(payment, "gtx_1")  # reconciliation, a pass later

    [event] = await events_of(services, payment.id)
    assert event.data["payment"] == public_view(await stored(services, payment.id))
