"""Recording the gateway's answer to a refund: succeeded (ledger record, payment status,
event) or released (the reservation given back), each in one step. The request flow
(`services/refunds.py`) and reconciliation both record through here.

The payment's status is a function of `refundedAmount` applied whenever a refund ends:
0 → completed, all → refunded, else partially_refunded.
"""

from __future__ import annotations

from datetime import datetime

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database, Session
from payments_api.models import event as event_store
from payments_api.models import ledger as ledger_store
from payments_api.models import payment as payment_store
from payments_api.models import refund as refund_store
from payments_api.models.payment import Payment
from payments_api.models.refund import Refund
from payments_api.services.events import payment_event
from payments_api.services.payment_cache import PaymentCache
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import log_business_event

SETTLE_ATTEMPTS = 100
"""Bound on compare-and-set retries while other refunds of the same payment move its total."""


class RefundSettlement:
    def __init__(self, db: Database, cache: PaymentCache) -> None:
        self.db = db
        self.cache = cache

    async def succeed(self, payment: Payment, refund: Refund) -> Refund:
        """Record the gateway's yes: ledger record, payment status and event, refund status —
        one step. Without transactions the order still leaves a state reconciliation can
        finish: the ledger record first (deduplicated by refundId), the refund's status last."""
        now = utcnow()
        async with self.db.transaction() as session:
            await ledger_store.record_movement(
                self.db,
                payment,
                "refund",
                reference=refund.id,
                amount=refund.amount,
                description=f"Refund: {refund.reason}",
                now=now,
                session=session,
            )
            updated = await self._end_reservation(
                payment, refund, now, released=False, session=session
            )
            if updated is not None:
                await event_store.append(
                    self.db,
                    payment_event(EventType.PAYMENT_REFUNDED, updated, now, reference=refund.id),
                    session,
                )
            succeeded = await refund_store.set_status(
                self.db, refund.id, "succeeded", session=session
            )
        if updated is not None:
            await self.cache.put(updated)
        log_business_event(
            "payment refunded", paymentId=payment.id, refundId=refund.id, amount=refund.amount
        )
        if succeeded is None:  # recorded already (by a racing settlement): answer with that
            succeeded = await refund_store.find_by_id(self.db, refund.id)
        return succeeded or refund

    async def release(self, payment: Payment, refund: Refund, failure_code: str) -> None:
        """Give back the refund's reservation after the gateway's no; the refund failed."""
        now = utcnow()
        async with self.db.transaction() as session:
            updated = await self._end_reservation(
                payment, refund, now, released=True, session=session
            )
            await refund_store.set_status(
                self.db, refund.id, "failed", failure_code=failure_code, session=session
            )
        if updated is not None:
            await self.cache.put(updated)

    async def _end_reservation(
        self,
        payment: Payment,
        refund: Refund,
        now: datetime,
        *,
        released: bool,
        session: Session,
    ) -> Payment | None:
        """Take the refund off `pendingRefunds` (giving its amount back when `released`) and
        set the status that the resulting `refundedAmount` implies, in one guarded update."""
        listed = {"pendingRefunds.refundId": refund.id}
        pull = {"$pull": {"pendingRefunds": {"refundId": refund.id}}}
        give_back = {"$inc": {"refundedAmount": -refund.amount}} if released else {}
        after = refund.amount if released else 0  # what leaves refundedAmount
        for _ in range(SETTLE_ATTEMPTS):
            current = await payment_store.find_by_id(self.db, payment.id, session)
            if current is None or not any(
                p.refund_id == refund.id for p in current.pending_refunds
            ):
                return None
            remaining = current.refunded_amount - after
            if remaining <= 0:
                status = PaymentStatus.COMPLETED
            elif remaining >= current.amount:
                status = PaymentStatus.REFUNDED
            else:
                status = PaymentStatus.PARTIALLY_REFUNDED
            updated = await payment_store.update_where(
                self.db,
                payment.id,
                {**listed, "refundedAmount": current.refunded_amount},
                {**pull, **give_back, "$set": {"status": status.value}},
                now=now,
                session=session,
            )
            if updated is not None:
                return updated
        return None
