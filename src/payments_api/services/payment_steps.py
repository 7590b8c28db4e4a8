"""One step of a payment: a state change together with the records that belong to it — its event,
its ledger record, what it gives back of the daily limit, the user's stats.

Settlement (pending → authorized, completed or failed), capture (authorized → completed) and
void (authorized → cancelled) all take their steps through here, so they record the same way.
Each step turns on a compare-and-set naming the state it expects: whoever changes the payment
first wins, and a second attempt returns the state the first one left.

The records of a step belong to the outcome that wins (../shared/ARCHITECTURE.md). Where there
are transactions a lost compare-and-set aborts the step's own writes. Where there are none, the
order keeps them right: the step writes its event as a *draft* (delivered to nobody), then its
ledger record, then the compare-and-set; the winner then publishes its draft (a failure or a
void first gives back the hold, a failure also clears what a dead completion left). A loser
discards its own draft and ledger record. A step that died half-way leaves its draft behind:
reconciliation finishes it or discards it by the payment's state (`recover_draft`), never
writing anything twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database, Session
from payments_api.models import event as event_store
from payments_api.models import ledger as ledger_store
from payments_api.models import payment as payment_store
from payments_api.models import user as user_store
from payments_api.models.event import Event
from payments_api.models.ledger import LedgerType
from payments_api.models.payment import COMPLETED_OR_LATER, Payment, Transition
from payments_api.services.daily_limits import DailyLimitService
from payments_api.services.events import payment_event
from payments_api.services.payment_cache import PaymentCache
from payments_api.services.stats import stats_key
from payments_api.utils.logger import get_logger

logger = get_logger("payment-steps")

OUTCOME_OF_EVENT = {
    EventType.PAYMENT_AUTHORIZED: PaymentStatus.AUTHORIZED,
    EventType.PAYMENT_COMPLETED: PaymentStatus.COMPLETED,
    EventType.PAYMENT_FAILED: PaymentStatus.FAILED,
    EventType.PAYMENT_CANCELLED: PaymentStatus.CANCELLED,
}
"""The steps that write their event as a draft, by the state their winning step leaves."""


@dataclass(frozen=True, slots=True)
class Movement:
    """The ledger record a step writes before its compare-and-set (referenced by the
    paymentId: one per type and payment)."""

    type: LedgerType
    amount: int
    description: str


@dataclass(frozen=True, slots=True)
class Step:
    """A change and what it writes with it. `expected` is what the compare-and-set names
    besides the event count (`Transition.guard`); `trim_to` is a capture's amount, to which
    the daily-limit hold is cut."""

    change: Transition
    event_type: EventType
    expected: dict[str, Any]
    movement: Movement | None = None
    trim_to: int | None = None


@dataclass(frozen=True, slots=True)
class StepTaken:
    """The payment as the step left it (won) or as the step that won instead left it."""

    payment: Payment
    won: bool


class _Lost(Exception):
    """Another step changed the payment first."""

    def __init__(self, current: Payment) -> None:
        super().__init__(current.id)
        self.current = current


class PaymentSteps:
    def __init__(self, db: Database, limits: DailyLimitService, cache: PaymentCache) -> None:
        self.db = db
        self.limits = limits
        self.cache = cache

    async def take(self, step: Step) -> StepTaken:
        """Write the step's draft event, ledger record and hold trim, then its compare-and-set,
        then publish: one transaction where there are transactions."""
        change, before = step.change, step.change.before
        now = change.after.updated_at
        event = payment_event(step.event_type, change, now, draft=True)
        try:
            async with self.db.transaction() as session:
                await event_store.append(self.db, event, session)
                if step.movement is not None:
                    await ledger_store.record_movement(
                        self.db,
                        before,
                        step.movement.type,
                        reference=before.id,
                        amount=step.movement.amount,
                        description=step.movement.description,
                        now=now,
                        session=session,
                    )
                if step.trim_to is not None:
                    await self.limits.trim_to_capture(before, step.trim_to, session)
                updated = await self._compare_and_set(step, now, session)
                await self.publish(updated, event, session)
        except _Lost as lost:
            return StepTaken(await self.lost(lost.current, event), won=False)
        await self.after_change(updated)
        return StepTaken(updated, won=True)

    async def _compare_and_set(self, step: Step, now: datetime, session: Session) -> Payment:
        change = step.change
        updated = await payment_store.update_where(
            self.db,
            change.before.id,
            {**step.expected, **change.guard},
            change.update,
            now=now,
            session=session,
        )
        if updated is not None:
            return updated
        current = await payment_store.find_by_id(self.db, change.before.id)
        if current is None:
            raise LookupError(f"payment {change.before.id} vanished")
        if current.status != change.after.status:
            logger.info(
                "another step changed the payment first",
                paymentId=current.id,
                wanted=change.after.status,
                found=current.status,
            )
        raise _Lost(current)

    async def publish(self, payment: Payment, event: Event, session: Session) -> None:
        """The rest of a step that won, its draft published last, so that a draft still
        unpublished means "not finished" (`recover_draft`). A failure or a void gives back its
        hold (at most once); a failure also clears what a completion that died before its
        compare-and-set left (a completion need not: a dead failure wrote nothing but its
        draft, which `recover_draft` discards). The user's stats are counted with the
        publication, which happens once."""
        if payment.status == PaymentStatus.FAILED:
            await self.limits.release(payment, session)
            await ledger_store.discard(self.db, "payment", payment.id, session)
            await event_store.discard_drafts(
                self.db, payment.id, keep=event.dedupe_key, session=session
            )
        elif is_void(payment):
            await self.limits.release(payment, session)
        published = await event_store.publish_draft(self.db, event.dedupe_key, event.data, session)
        if published and event.type == EventType.PAYMENT_COMPLETED:
            await user_store.record_completed_payment(
                self.db, payment.user_id, payment.captured_amount, event.created_at, session
            )

    async def lost(self, current: Payment, event: Event) -> Payment:
        """A step lost its compare-and-set: when another outcome won, the step's own records
        (written where there is no transaction to abort) are discarded."""
        if not is_outcome(current, OUTCOME_OF_EVENT[EventType(event.type)]):
            await event_store.discard_draft(self.db, event.dedupe_key)
            if current.status == PaymentStatus.FAILED:
                await ledger_store.discard(self.db, "payment", current.id)
        return current

    async def after_change(self, payment: Payment) -> None:
        """After the commit: the read cache gets the new state and the user's stats hash is
        dropped, in one round trip."""
        await self.cache.put(payment, stale=(stats_key(payment.user_id),))


def is_void(payment: Payment) -> bool:
    """Cancelled without having been charged: a voided authorization."""
    return payment.status == PaymentStatus.CANCELLED and payment.captured_amount == 0


def is_outcome(payment: Payment, outcome: PaymentStatus) -> bool:
    """Whether `payment` is in `outcome` or in a state only `outcome` leads to."""
    if outcome == PaymentStatus.COMPLETED:
        return payment.status in COMPLETED_OR_LATER and payment.captured_amount > 0
    if outcome == PaymentStatus.AUTHORIZED:
        return payment.status not in (PaymentStatus.PENDING, PaymentStatus.FAILED)
    return payment.status == outcome
