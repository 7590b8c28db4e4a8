"""Recording the gateway's answer to a refund: succeeded (ledger record, payment status,
event) or released (the reservation given back), each in one step. The request flow
(`services/refunds.py`) and reconciliation both record through here.

The payment's status follows what is refunded for certain (a reservation still awaiting the
gateway does not count): some → partially_refunded, all → refunded. So only a success changes
it, with its event; giving a reservation back changes no status and makes no event.

A success is a compare-and-set on the payment's event count (`Transition.guard`), tried again
while other refunds of the payment succeed first, so each success's event has a place of its
own in the payment's sequence. Without transactions the order keeps it right: the ledger record
(deduplicated by refundId), the event's draft, the compare-and-set, the draft published, the
refund's status last. A success that died after its compare-and-set leaves its draft, which
describes the try that won (`event_store.save_draft`), for reconciliation to publish
(`finish_recorded`).
"""

from __future__ import annotations

from datetime import datetime

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database, Session
from payments_api.models import event as event_store
from payments_api.models import ledger as ledger_store
from payments_api.models import payment as payment_store
from payments_api.models import refund as refund_store
from payments_api.models.event import Event
from payments_api.models.payment import Payment, Transition
from payments_api.models.refund import Refund
from payments_api.services.events import dedupe_key, payment_event
from payments_api.services.payment_cache import PaymentCache
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import log_business_event

SETTLE_ATTEMPTS = 100
"""Bound on compare-and-set retries while other refunds of the same payment succeed first."""


def _reserved(payment: Payment, refund_id: str) -> bool:
    return any(p.refund_id == refund_id for p in payment.pending_refunds)


def _status_after_success(payment: Payment, refund_id: str) -> PaymentStatus:
    """The status once this refund's reservation counts as refunded."""
    reserved = sum(p.amount for p in payment.pending_refunds if p.refund_id == refund_id)
    refunded = payment.settled_refunded_amount + reserved
    if refunded >= payment.captured_amount:
        return PaymentStatus.REFUNDED
    return PaymentStatus.PARTIALLY_REFUNDED


class RefundSettlement:
    def __init__(self, db: Database, cache: PaymentCache) -> None:
        self.db = db
        self.cache = cache

    async def succeed(self, payment: Payment, refund: Refund) -> Refund:
        """Record the gateway's yes: ledger record, payment status and event, refund status —
        one step (see the module's docstring for its order without transactions)."""
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
            updated = await self._record_success(payment.id, refund, now, session)
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

    async def _record_success(
        self, payment_id: str, refund: Refund, now: datetime, session: Session
    ) -> Payment | None:
        """End the refund's reservation as refunded, with its event; None when it has ended
        already. Each try describes the payment it read, and stores that change only if no
        other event's change came first (else it reads again)."""
        for _ in range(SETTLE_ATTEMPTS):
            current = await payment_store.find_by_id(self.db, payment_id, session)
            if current is None or not _reserved(current, refund.id):
                return None
            change = Transition.of(
                current,
                now,
                ends_reservation=refund.id,
                status=_status_after_success(current, refund.id),
            )
            event = payment_event(
                EventType.PAYMENT_REFUNDED, change, now, reference=refund.id, draft=True
            )
            await event_store.save_draft(self.db, event, session)
            updated = await payment_store.update_where(
                self.db,
                payment_id,
                {"pendingRefunds.refundId": refund.id, **change.guard},
                change.update,
                now=now,
                session=session,
            )
            if updated is not None:
                await event_store.publish_draft(self.db, event.dedupe_key, event.data, session)
                return updated
        return None

    async def release(self, payment: Payment, refund: Refund, failure_code: str) -> None:
        """Give back the refund's reservation after the gateway's no; the refund failed. The
        payment's status stays: it never counted the reservation."""
        now = utcnow()
        async with self.db.transaction() as session:
            updated = await payment_store.update_where(
                self.db,
                payment.id,
                {"pendingRefunds.refundId": refund.id},
                {
                    "$pull": {"pendingRefunds": {"refundId": refund.id}},
                    "$inc": {"refundedAmount": -refund.amount},
                },
                now=now,
                session=session,
            )
            await refund_store.set_status(
                self.db, refund.id, "failed", failure_code=failure_code, session=session
            )
        if updated is not None:
            await self.cache.put(updated)

    async def finish_recorded(self, refund: Refund) -> None:
        """Finish a success that died after its compare-and-set (its ledger record is there,
        its reservation ended): its event, the draft written before the compare-and-set and
        describing the change that won, published once; the refund succeeded."""
        key = dedupe_key(EventType.PAYMENT_REFUNDED, refund.payment_id, refund.id)
        await event_store.publish_draft(self.db, key, None)
        await refund_store.set_status(self.db, refund.id, "succeeded")

    async def recover_draft(self, draft: Event) -> None:
        """The draft of a success that died before publishing it: left alone while the refund
        is still reserved (the refund pass asks the gateway again and finishes it), published
        when the success won, else (its refund failed, or never reached the ledger) discarded."""
        refund_id = draft.reference or ""
        payment = await payment_store.find_by_id(self.db, draft.payment_id)
        if payment is not None and _reserved(payment, refund_id):
            return
        refund = await refund_store.find_by_id(self.db, refund_id)
        if (
            payment is not None
            and refund is not None
            and refund.status != "failed"
            and await ledger_store.has_movement(self.db, "refund", refund_id)
        ):
            await self.finish_recorded(refund)
        else:
            await event_store.discard_draft(self.db, draft.dedupe_key)
