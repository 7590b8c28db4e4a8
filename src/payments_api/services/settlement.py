"""Settling a pending payment: `completed` or `failed`, each in one step with its ledger record,
its event, its daily-limit release and the user's stats.

The create flow and reconciliation both settle through here, so they can never disagree. Each
settlement starts with a compare-and-set from `pending`: whoever settles first wins, and a
second attempt returns the state the first one left.
"""

from __future__ import annotations

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database
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
from payments_api.utils.logger import log_business_event
from payments_api.utils.metrics import Metrics

PENDING = {"status": PaymentStatus.PENDING.value}


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
        async with self.db.transaction() as session:
            updated = await payments.update_where(
                self.db,
                payment.id,
                PENDING,
                {
                    "$set": {
                        "status": PaymentStatus.COMPLETED.value,
                        "transactionId": transaction_id,
                        "completedAt": now,
                    }
                },
                now=now,
                session=session,
            )
            if updated is None:
                return await self._current(payment.id)
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
                self.db, payment_event(EventType.PAYMENT_COMPLETED, updated, now), session
            )
            await users.record_completed_payment(
                self.db, payment.user_id, payment.amount, now, session
            )
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
        async with self.db.transaction() as session:
            updated = await payments.update_where(
                self.db,
                payment.id,
                PENDING,
                {
                    "$set": {
                        "status": PaymentStatus.FAILED.value,
                        "failureCode": failure_code,
                        "failureMessage": failure_message,
                    }
                },
                now=now,
                session=session,
            )
            if updated is None:
                return await self._current(payment.id)
            await self.limits.release(
                user_id=payment.user_id,
                day=payment.hold_day,
                payment_id=payment.id,
                amount=payment.amount,
                session=session,
            )
            await events.append(
                self.db, payment_event(EventType.PAYMENT_FAILED, updated, now), session
            )
        await self._after_change(updated)
        self.metrics.payments.labels("failed").inc()
        log_business_event(
            "payment failed",
            paymentId=payment.id,
            userId=payment.user_id,
            failureCode=failure_code,
        )
        return updated

    async def _after_change(self, payment: Payment) -> None:
        """After the commit: the read cache gets the new state, the stats hash is dropped."""
        await self.cache.put(payment)
        await self.stats.invalidate(payment.user_id)
