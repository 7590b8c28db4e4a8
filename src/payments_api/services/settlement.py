"""Settling a pending payment: `completed` or `failed`, each in one step with its ledger record,
its event, its daily-limit release and the user's stats.

The create flow and reconciliation both settle through here, so they can never disagree. Each
settlement ends with a compare-and-set from `pending`: whoever settles first wins, and a
second attempt returns the state the first one left. The writes before it are each
deduplicated (ledger by reference, event by dedupe key, hold release by the holds list), so
on a deployment without transactions a settlement that died half-way leaves the payment
pending, and reconciliation completes it without writing anything twice.
"""

from __future__ import annotations

from datetime import datetime

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database, Session
from payments_api.models import event as events
from payments_api.models import ledger
from payments_api.models import payment as payments
from payments_api.models import user as users
from payments_api.models.payment import Payment
from payments_api.services.daily_limits import DailyLimitService
from payments_api.services.events import payment_event
from payments_api.services.payment_cache import PaymentCache
from payments_api.services.stats import StatsService
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import get_logger, log_business_event
from payments_api.utils.metrics import Metrics

PENDING = {"status": PaymentStatus.PENDING.value}

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
    ) -> None:
        self.db = db
        self.limits = limits
        self.cache = cache
        self.stats = stats
        self.metrics = metrics

    async def _current(self, payment_id: str) -> Payment:
        current = await payments.find_by_id(self.db, payment_id)
        if current is None:
            raise LookupError(f"payment {payment_id} vanished")
        return current

    async def complete(self, payment: Payment, transaction_id: str | None) -> Payment:
        """pending → completed, with the `payment` ledger record, the event and the stats."""
        now = utcnow()
        expected = payment.next_state(
            now,
            status=PaymentStatus.COMPLETED,
            transaction_id=transaction_id,
            completed_at=now,
        )
        try:
            async with self.db.transaction() as session:
                # The ledger record and the event first: both are deduplicated, so where there
                # are no transactions a step that dies here leaves the payment pending and
                # reconciliation finishes it without doubles. The compare-and-set comes last.
                await ledger.record_movement(
                    self.db,
                    payment,
                    "payment",
                    reference=payment.id,
                    amount=payment.amount,
                    description=f"Payment for {payment.product_name}",
                    now=now,
                    session=session,
                )
                await events.append(
                    self.db, payment_event(EventType.PAYMENT_COMPLETED, expected, now), session
                )
                updated = await self._compare_and_set(
                    payment,
                    {
                        "status": PaymentStatus.COMPLETED.value,
                        "transactionId": transaction_id,
                        "completedAt": now,
                    },
                    now,
                    session,
                )
                await users.record_completed_payment(
                    self.db, payment.user_id, payment.amount, now, session
                )
        except _AlreadySettled as settled:
            return settled.current
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
        """pending → failed: the daily-limit hold is given back and the event written."""
        now = utcnow()
        changes: dict[str, object] = {
            "status": PaymentStatus.FAILED.value,
            "failureCode": failure_code,
            "failureMessage": failure_message,
        }
        expected = payment.next_state(
            now,
            status=PaymentStatus.FAILED,
            failure_code=failure_code,
            failure_message=failure_message,
        )
        try:
            async with self.db.transaction() as session:
                # Event and release first (both happen at most once), the compare-and-set last,
                # so a step that dies half-way is left pending for reconciliation to finish.
                await events.append(
                    self.db, payment_event(EventType.PAYMENT_FAILED, expected, now), session
                )
                await self.limits.release(payment, session)
                updated = await self._compare_and_set(payment, changes, now, session)
        except _AlreadySettled as settled:
            return settled.current
        await self._after_change(updated)
        self.metrics.payments.labels("failed").inc()
        log_business_event(
            "payment failed",
            paymentId=payment.id,
            userId=payment.user_id,
            failureCode=failure_code,
        )
        return updated

    async def _compare_and_set(
        self, payment: Payment, changes: dict[str, object], now: datetime, session: Session
    ) -> Payment:
        """pending → the new state, or `_AlreadySettled` (which aborts the transaction, where
        there is one) when another settler got there first."""
        updated = await payments.update_where(
            self.db, payment.id, PENDING, {"$set": changes}, now=now, session=session
        )
        if updated is not None:
            return updated
        current = await self._current(payment.id)
        if current.status != changes["status"]:
            logger.error(
                "settlement disagrees with an earlier one",
                paymentId=payment.id,
                wanted=changes["status"],
                found=current.status,
            )
        raise _AlreadySettled(current)

    async def _after_change(self, payment: Payment) -> None:
        """After the commit: the read cache gets the new state, the stats hash is dropped."""
        await self.cache.put(payment)
        await self.stats.invalidate(payment.user_id)
