"""Settling a pending payment: `completed` or `failed`, each in one step with its ledger record,
its event, its daily-limit release and the user's stats.

The create flow and reconciliation both settle through here, so they can never disagree. Each
settlement turns on a compare-and-set from `pending`: whoever settles first wins, and a second
attempt returns the state the first one left.

The records of a step belong to the outcome that wins (../shared/ARCHITECTURE.md). Where there
are transactions a lost compare-and-set aborts the step's own writes. Where there are none, the
order keeps them right: the step writes its event as a *draft* (delivered to nobody), then its
ledger record, then the compare-and-set; the winner then publishes its draft (a failure first
gives back the hold and clears what a dead completion left). A loser discards its own draft and
ledger record. A step that died half-way leaves its draft behind: reconciliation finishes it or
discards it by the payment's state (`recover_draft`), never writing anything twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from payments_api.config.constants import (
    UNANSWERED_FAILURES,
    EventType,
    FailureCode,
    PaymentStatus,
)
from payments_api.config.database import Database, Session
from payments_api.models import event as event_store
from payments_api.models import ledger as ledger_store
from payments_api.models import payment as payment_store
from payments_api.models import user as user_store
from payments_api.models.event import Event
from payments_api.models.payment import Payment, Transition
from payments_api.services.daily_limits import DailyLimitService
from payments_api.services.events import payment_event
from payments_api.services.gateway import GatewayResult
from payments_api.services.payment_cache import PaymentCache
from payments_api.services.stats import StatsService
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import get_logger, log_business_event
from payments_api.utils.metrics import Metrics

PENDING = {"status": PaymentStatus.PENDING.value}
RECHECK_FOR = timedelta(hours=24)
"""How long a failure no gateway "no" stands behind is watched for a charge that lands."""

COMPLETED_OR_LATER = frozenset(
    {
        PaymentStatus.COMPLETED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
        PaymentStatus.CANCELLED,
    }
)
"""Statuses a payment can only reach after its completion won."""

NOT_CHARGED_MESSAGE = (
    "The gateway's answer was lost and the charge was reversed: nothing was charged"
)

OUTCOME_OF_EVENT = {
    EventType.PAYMENT_COMPLETED: PaymentStatus.COMPLETED,
    EventType.PAYMENT_FAILED: PaymentStatus.FAILED,
    EventType.PAYMENT_CANCELLED: PaymentStatus.CANCELLED,
}
"""The steps that write their event as a draft, by the state their winning step leaves."""

logger = get_logger("settlement")


class _AlreadySettled(Exception):
    """Another settler moved the payment out of `pending` first."""

    def __init__(self, current: Payment) -> None:
        super().__init__(current.id)
        self.current = current


class SettlementService:
    def __init__(
        self,
        db: Database,
        limits: DailyLimitService,
        cache: PaymentCache,
        stats: StatsService,
        metrics: Metrics,
        *,
        first_recheck_after: timedelta,
    ) -> None:
        self.db = db
        self.first_recheck_after = first_recheck_after
        self.limits = limits
        self.cache = cache
        self.stats = stats
        self.metrics = metrics

    async def _current(self, payment_id: str) -> Payment:
        current = await payment_store.find_by_id(self.db, payment_id)
        if current is None:
            raise LookupError(f"payment {payment_id} vanished")
        return current

    async def settle(self, payment: Payment, result: GatewayResult) -> Payment | None:
        """Settle by what the gateway said of the charge: approved → completed; declined, or
        reversed (so never charged) → failed. None for anything that is not an answer."""
        if result.outcome == "approved":
            return await self.complete(payment, result.transaction_id)
        if result.outcome == "declined":
            return await self.fail(
                payment,
                result.failure_code or "CARD_DECLINED",
                result.failure_message or "The payment was declined",
            )
        if result.outcome == "reversed":
            return await self.fail(payment, FailureCode.NOT_CHARGED, NOT_CHARGED_MESSAGE)
        return None

    async def complete(self, payment: Payment, transaction_id: str | None) -> Payment:
        """pending → completed, with the `payment` ledger record, the event and the stats."""
        now = utcnow()
        change = Transition.of(
            payment,
            now,
            status=PaymentStatus.COMPLETED,
            transaction_id=transaction_id,
            completed_at=now,
        )
        event = payment_event(EventType.PAYMENT_COMPLETED, change, now, draft=True)
        try:
            async with self.db.transaction() as session:
                await event_store.append(self.db, event, session)
                await ledger_store.record_movement(
                    self.db,
                    payment,
                    "payment",
                    reference=payment.id,
                    amount=payment.amount,
                    description=f"Payment for {payment.product_name}",
                    now=now,
                    session=session,
                )
                updated = await self._compare_and_set(payment, change, now, session)
                await self._publish(updated, event, session)
        except _AlreadySettled as settled:
            return await self._lost(settled.current, event)
        await self._after_change(updated)
        self.metrics.payments.labels("completed").inc()
        log_business_event(
            "payment completed",
            paymentId=payment.id,
            userId=payment.user_id,
            merchantId=payment.merchant_id,
            amount=payment.amount,
            currency=payment.currency,
        )
        return updated

    async def fail(self, payment: Payment, failure_code: str, failure_message: str) -> Payment:
        """pending → failed: the daily-limit hold is given back and the event written. A
        failure no gateway "no" stands behind is watched for a late charge for 24 hours."""
        now = utcnow()
        watch: dict[str, Any] = {}
        if failure_code in UNANSWERED_FAILURES:
            watch = {
                "next_recheck_at": now + self.first_recheck_after,
                "recheck_until": now + RECHECK_FOR,
            }
        change = Transition.of(
            payment,
            now,
            status=PaymentStatus.FAILED,
            failure_code=failure_code,
            failure_message=failure_message,
            **watch,
        )
        event = payment_event(EventType.PAYMENT_FAILED, change, now, draft=True)
        try:
            async with self.db.transaction() as session:
                await event_store.append(self.db, event, session)
                updated = await self._compare_and_set(payment, change, now, session)
                await self._publish(updated, event, session)
        except _AlreadySettled as settled:
            return await self._lost(settled.current, event)
        await self._after_change(updated)
        self.metrics.payments.labels("failed").inc()
        log_business_event(
            "payment failed",
            paymentId=payment.id,
            userId=payment.user_id,
            failureCode=failure_code,
        )
        return updated

    async def _publish(self, payment: Payment, event: Event, session: Session) -> None:
        """The rest of a step that won, its draft published last, so that a draft still
        unpublished means "not finished" (`recover_draft`). A failure gives back its hold (at
        most once) and clears what a completion that died before its compare-and-set left
        (a completion need not: a dead failure wrote nothing but its draft, which
        `recover_draft` discards). The user's stats are counted with the publication, which
        happens once."""
        if payment.status == PaymentStatus.FAILED:
            await self.limits.release(payment, session)
            await ledger_store.discard(self.db, "payment", payment.id, session)
            await event_store.discard_drafts(
                self.db, payment.id, keep=event.dedupe_key, session=session
            )
        published = await event_store.publish_draft(self.db, event.dedupe_key, event.data, session)
        if published and event.type == EventType.PAYMENT_COMPLETED:
            await user_store.record_completed_payment(
                self.db, payment.user_id, payment.amount, event.created_at, session
            )

    async def _lost(self, current: Payment, event: Event) -> Payment:
        """This step lost its compare-and-set: when another outcome won, the step's own records
        (written where there is no transaction to abort) are discarded."""
        if not _is_outcome(current, OUTCOME_OF_EVENT[EventType(event.type)]):
            await event_store.discard_draft(self.db, event.dedupe_key)
            if current.status == PaymentStatus.FAILED:
                await ledger_store.discard(self.db, "payment", current.id)
        return current

    async def recover_draft(self, draft: Event) -> None:
        """Finish or discard the draft of a step that died before it published or discarded
        it, by what the payment's state says happened; a payment still pending is left to
        the pending pass, which settles it through this same code, and one whose cancel is
        still reserved to the cancel pass (`CancelService.finish_cancel`)."""
        current = await payment_store.find_by_id(self.db, draft.payment_id)
        if current is None:
            await event_store.discard_draft(self.db, draft.dedupe_key)
            return
        cancelling = draft.type == EventType.PAYMENT_CANCELLED and current.cancel_reserved
        if current.status == PaymentStatus.PENDING or cancelling:
            return
        outcome = OUTCOME_OF_EVENT.get(EventType(draft.type))
        if outcome is not None and _is_outcome(current, outcome):
            async with self.db.transaction() as session:
                await self._publish(current, draft, session)
            await self._after_change(current)
            logger.warning("finished a settlement that died half-way", paymentId=current.id)
        else:
            await self._lost(current, draft)
            logger.warning("discarded the records of a losing step", paymentId=current.id)

    async def _compare_and_set(
        self, payment: Payment, change: Transition, now: datetime, session: Session
    ) -> Payment:
        """pending → the new state, or `_AlreadySettled` (which aborts the transaction, where
        there is one) when another settler got there first."""
        expected = {**PENDING, **change.guard}
        updated = await payment_store.update_where(
            self.db, payment.id, expected, change.update, now=now, session=session
        )
        if updated is not None:
            return updated
        current = await self._current(payment.id)
        if current.status != change.after.status:
            logger.error(
                "settlement disagrees with an earlier one",
                paymentId=payment.id,
                wanted=change.after.status,
                found=current.status,
            )
        raise _AlreadySettled(current)

    async def _after_change(self, payment: Payment) -> None:
        """After the commit: the read cache gets the new state, the stats hash is dropped."""
        await self.cache.put(payment)
        await self.stats.invalidate(payment.user_id)


def _is_outcome(payment: Payment, outcome: PaymentStatus) -> bool:
    """Whether `payment` is in `outcome` or in a state only `outcome` leads to."""
    if outcome == PaymentStatus.COMPLETED:
        return payment.status in COMPLETED_OR_LATER
    return payment.status == outcome
