"""Cancelling a payment: completed (nothing refunded) → cancelled, the whole charge returned at
the gateway and the amount released from the daily limit; or, for an `authorized` one, a void
(services/voids.py), which its merchant and admins may ask for too.

The full amount is reserved on `refundedAmount` first (listed in `pendingRefunds` under
CANCEL_REFERENCE), so a racing refund finds nothing left to take; the gateway's yes finishes
the cancel, its no gives the reservation back, and no answer leaves it for reconciliation.

As for settlement, the cancel's event is written as a draft and published only by the attempt
whose state change wins, with the state that attempt stored: an attempt that died half-way
leaves a draft that its retry publishes, or reconciliation finishes or discards
(`SettlementService.recover_draft`).
"""

from __future__ import annotations

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database
from payments_api.errors import ConflictError, ForbiddenError, ServiceUnavailableError
from payments_api.models import event as event_store
from payments_api.models import ledger as ledger_store
from payments_api.models import payment as payment_store
from payments_api.models.payment import CANCEL_REFERENCE, Payment, PendingRefund, Transition
from payments_api.services.auth import Principal
from payments_api.services.daily_limits import DailyLimitService
from payments_api.services.events import payment_event
from payments_api.services.gateway import GatewayClient
from payments_api.services.payment_cache import PaymentCache
from payments_api.services.payment_reads import PaymentReadService
from payments_api.services.stats import stats_key
from payments_api.services.voids import VoidOutcome, VoidService
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import log_business_event


class PaymentNotCancellable(ConflictError):
    code = "PAYMENT_NOT_CANCELLABLE"
    message = "Only a completed payment with nothing refunded can be cancelled"


class CancelNotConfirmed(ServiceUnavailableError):
    """The gateway's answer was lost: the cancel stays reserved; a retry (or reconciliation)
    asks again."""

    code = "GATEWAY_UNAVAILABLE"
    message = "The gateway did not confirm the cancellation; retry"


class CancelGatewayUnavailable(ServiceUnavailableError):
    code = "GATEWAY_UNAVAILABLE"
    message = "The payment gateway could not be reached; nothing was charged"


class CancelNotAllowed(ForbiddenError):
    message = "Only the payment's user can cancel a charged payment (its merchant refunds it)"


VOID_REFUSALS: dict[VoidOutcome, type[ConflictError | ServiceUnavailableError]] = {
    "unknown": CancelNotConfirmed,
    "unreachable": CancelGatewayUnavailable,
    "refused": PaymentNotCancellable,
    "not_authorized": PaymentNotCancellable,
}


class CancelService:
    def __init__(
        self,
        db: Database,
        gateway: GatewayClient,
        limits: DailyLimitService,
        cache: PaymentCache,
        reads: PaymentReadService,
        voids: VoidService,
    ) -> None:
        self.db = db
        self.reads = reads
        self.voids = voids
        self.gateway = gateway
        self.limits = limits
        self.cache = cache

    async def cancel(self, principal: Principal, payment_id: str, reason: str) -> Payment:
        """An authorization voided (by anyone who may read the payment), or the user's own
        completed payment cancelled: reserved, asked of the gateway, then finished or given
        back by its answer."""
        payment = await self.reads.get_for_reader(principal, payment_id)
        if payment.status == PaymentStatus.AUTHORIZED:
            voided = await self.voids.void(payment, reason)
            if voided.outcome == "voided":
                return voided.payment
            raise VOID_REFUSALS[voided.outcome]()
        if principal.kind != "user" or principal.id != payment.user_id:
            raise CancelNotAllowed()
        first = not payment.cancel_reserved
        if first:
            payment = await self._reserve(payment, reason)
        result = await self.gateway.cancel(payment_id)
        if result.outcome == "approved":
            return await self.finish_cancel(payment, reason)
        if result.outcome == "unknown" or (result.outcome == "unreachable" and not first):
            # An earlier attempt's answer was lost: it may have cancelled, so the reservation
            # stays for a retry or reconciliation to settle.
            raise CancelNotConfirmed()
        await self.undo_cancel(payment)
        if result.outcome == "unreachable":
            raise CancelGatewayUnavailable()
        raise PaymentNotCancellable()

    async def _reserve(self, payment: Payment, reason: str) -> Payment:
        """The whole amount reserved for the cancel, if the payment is still completed with
        nothing refunded."""
        reserved = await payment_store.update_where(
            self.db,
            payment.id,
            {"status": PaymentStatus.COMPLETED.value, "refundedAmount": 0},
            {
                "$set": {"refundedAmount": payment.captured_amount},
                "$push": {
                    "pendingRefunds": PendingRefund(
                        refund_id=CANCEL_REFERENCE, amount=payment.captured_amount, reason=reason
                    ).to_mongo()
                },
            },
            now=utcnow(),
        )
        if reserved is None:
            raise PaymentNotCancellable()
        return reserved

    async def finish_cancel(self, payment: Payment, reason: str) -> Payment:
        """Record the gateway's yes to a cancel (also used by reconciliation). The event's
        draft, the ledger record and the hold release come first, each written at most once,
        then the state change, then the draft published: a step that dies half-way keeps its
        pending cancel, which a retry or reconciliation finishes without writing anything
        twice."""
        now = utcnow()
        change = Transition.of(
            payment,
            now,
            ends_reservation=CANCEL_REFERENCE,
            status=PaymentStatus.CANCELLED,
            cancel_reason=reason,
            cancelled_at=now,
        )
        async with self.db.transaction() as session:
            await ledger_store.record_movement(
                self.db,
                payment,
                "cancel",
                reference=payment.id,
                amount=payment.captured_amount,
                description=f"Cancellation: {reason}",
                now=now,
                session=session,
            )
            event = payment_event(EventType.PAYMENT_CANCELLED, change, now, draft=True)
            await event_store.append(self.db, event, session)
            await self.limits.release(payment, session)
            updated = await payment_store.update_where(
                self.db,
                payment.id,
                {"pendingRefunds.refundId": CANCEL_REFERENCE, **change.guard},
                change.update,
                now=now,
                session=session,
            )
            if updated is None:  # a concurrent retry finished it (and published the event)
                current = await payment_store.find_by_id(self.db, payment.id, session)
                if current is None or current.status != PaymentStatus.CANCELLED:
                    raise PaymentNotCancellable()
                return current
            await event_store.publish_draft(self.db, event.dedupe_key, event.data, session)
        await self.cache.put(updated, stale=(stats_key(payment.user_id),))
        log_business_event(
            "payment cancelled",
            paymentId=payment.id,
            userId=payment.user_id,
            amount=payment.captured_amount,
        )
        return updated

    async def undo_cancel(self, payment: Payment) -> None:
        """Give back the cancel's reservation after the gateway's no."""
        restored = await payment_store.update_where(
            self.db,
            payment.id,
            {"pendingRefunds.refundId": CANCEL_REFERENCE},
            {
                "$set": {"refundedAmount": 0},
                "$pull": {"pendingRefunds": {"refundId": CANCEL_REFERENCE}},
            },
            now=utcnow(),
        )
        if restored is not None:
            await self.cache.put(restored)
