"""Refunds: never more than the payment's amount, whatever the concurrency.

A refund first reserves its amount on the payment (a guarded `$inc` of `refundedAmount`, with
the refund listed in `pendingRefunds`), then asks the gateway (idempotent on the refundId), then
records the outcome. A refusal gives the reservation back. The payment's status is a function
of `refundedAmount` applied whenever a refund ends: 0 → completed, all → refunded, else
partially_refunded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database
from payments_api.errors import (
    ConflictError,
    ForbiddenError,
    ServiceUnavailableError,
    UnprocessableError,
)
from payments_api.models import event as events
from payments_api.models import ledger
from payments_api.models import payment as payments
from payments_api.models import refund as refunds
from payments_api.models import user as users
from payments_api.models.payment import REFUNDABLE, Payment, PendingRefund
from payments_api.models.refund import Refund
from payments_api.services.auth import Principal
from payments_api.services.events import payment_event
from payments_api.services.gateway import GatewayClient
from payments_api.services.idempotency import (
    Claim,
    IdempotencyService,
    StoredResult,
    fingerprint,
    in_flight_error,
    reused_key_error,
)
from payments_api.services.payment_cache import PaymentCache
from payments_api.services.payments import not_found
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import log_business_event

SETTLE_ATTEMPTS = 100
"""Bound on compare-and-set retries while other refunds of the same payment move its total."""


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    refund: Refund
    replayed: bool = False


def _not_refundable() -> ConflictError:
    return ConflictError(
        "PAYMENT_NOT_REFUNDABLE", "Only a completed or partially refunded payment can be refunded"
    )


def _exceeds(available: int) -> UnprocessableError:
    return UnprocessableError(
        "REFUND_EXCEEDS_AVAILABLE",
        "The refund exceeds what is left to refund on this payment",
        extra={"availableAmount": available},
    )


class RefundService:
    def __init__(
        self,
        db: Database,
        gateway: GatewayClient,
        idempotency: IdempotencyService,
        cache: PaymentCache,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.idempotency = idempotency
        self.cache = cache

    async def _payment_for_refunder(self, principal: Principal, payment_id: str) -> Payment:
        """The payment's merchant or an admin may refund; its owner gets 403, others 404."""
        payment = await payments.find_by_id(self.db, payment_id)
        if payment is None:
            raise not_found()
        if principal.kind == "merchant":
            if principal.id == payment.merchant_id:
                return payment
            raise not_found()
        user = await users.find_by_id(self.db, principal.id)
        if user is not None and user.is_admin and user.is_active:
            return payment
        if principal.id == payment.user_id:
            raise ForbiddenError(message="Only the merchant or an admin can refund a payment")
        raise not_found()

    async def list_for_reader(self, payment: Payment) -> list[Refund]:
        return await refunds.for_payment(self.db, payment.id)

    async def refund(
        self,
        principal: Principal,
        payment_id: str,
        *,
        amount: int | None,
        reason: str,
        key: str | None,
    ) -> RefundOutcome:
        payment = await self._payment_for_refunder(principal, payment_id)
        if key is None:
            return await self._refund(principal, payment, amount, reason, None)
        body = fingerprint({"paymentId": payment_id, "amount": amount, "reason": reason})
        scope = f"refund:{principal.kind}:{principal.id}"
        claim = await self._begin(scope, key, body)
        if isinstance(claim, Refund):
            return RefundOutcome(claim, replayed=True)
        try:
            outcome = await self._refund(
                principal, payment, amount, reason, (f"{scope}:{key}", body)
            )
        except Exception:
            await self.idempotency.abandon(claim)
            raise
        await self.idempotency.finish(claim, StoredResult(body, outcome.refund.id, 200))
        return outcome

    async def _begin(self, scope: str, key: str, body: str) -> Claim | Refund:
        """The key's lock, or the refund an earlier request with it made — unless that refund
        failed after all: a refund that did not happen is never replayed as one, so its
        result is forgotten and the key tries again (once; a second failed result found
        here is another retry's, still settling: 409 as in flight)."""
        for _ in range(2):
            claim = await self.idempotency.begin(scope, key, body)
            if not isinstance(claim, StoredResult):
                return claim
            stored = await refunds.find_by_id(self.db, claim.resource_id)
            if stored is None:
                raise not_found()
            if stored.status != "failed":
                return stored
            await self.idempotency.forget(scope, key)
        raise in_flight_error()

    async def _stored_refund(self, scope: str, body_fingerprint: str) -> Refund | None:
        """The refund an earlier request with this key made (when Redis forgot the key)."""
        existing = await refunds.find_by_idempotency_scope(self.db, scope)
        if existing is not None and existing.request_fingerprint != body_fingerprint:
            raise reused_key_error()
        return existing

    async def _refund(
        self,
        principal: Principal,
        payment: Payment,
        amount: int | None,
        reason: str,
        idempotency: tuple[str, str] | None,
    ) -> RefundOutcome:
        if idempotency is not None:
            earlier = await self._stored_refund(*idempotency)
            if earlier is not None:
                return RefundOutcome(earlier, replayed=True)
        if payment.status not in REFUNDABLE:
            raise _not_refundable()
        value = amount if amount is not None else payment.available_to_refund
        if value <= 0 or value > payment.available_to_refund:
            raise _exceeds(payment.available_to_refund)
        now = utcnow()
        refund = Refund(
            id=ids.refund_id(),
            payment_id=payment.id,
            user_id=payment.user_id,
            merchant_id=payment.merchant_id,
            amount=value,
            reason=reason,
            status="pending",
            requested_by=f"{principal.kind}:{principal.id}",
            idempotency_scope=idempotency[0] if idempotency else None,
            request_fingerprint=idempotency[1] if idempotency else None,
            created_at=now,
            updated_at=now,
        )
        try:
            await refunds.insert(self.db, refund)
        except DuplicateKeyError:  # a request with the same key raced this one
            assert idempotency is not None
            existing = await self._stored_refund(*idempotency)
            if existing is None:
                raise
            return RefundOutcome(existing, replayed=True)
        reserved = await payments.update_where(
            self.db,
            payment.id,
            {"status": {"$in": REFUNDABLE}, "refundedAmount": {"$lte": payment.amount - value}},
            {
                "$inc": {"refundedAmount": value},
                "$push": {
                    "pendingRefunds": PendingRefund(refund_id=refund.id, amount=value).to_mongo()
                },
            },
            now=now,
        )
        if reserved is None:
            await refunds.delete(self.db, refund.id)
            current = await payments.find_by_id(self.db, payment.id)
            if current is None or current.status not in REFUNDABLE:
                raise _not_refundable()
            raise _exceeds(current.available_to_refund)

        result = await self.gateway.refund(payment_id=payment.id, refund_id=refund.id, amount=value)
        if result.outcome == "approved":
            return RefundOutcome(await self.succeed(reserved, refund))
        if result.outcome == "unknown":
            # Stays reserved and pending; reconciliation asks the gateway again later.
            return RefundOutcome(refund)
        await self.release(reserved, refund, result.failure_code or "GATEWAY_REFUSED")
        if result.outcome == "unreachable":
            raise ServiceUnavailableError(
                "GATEWAY_UNAVAILABLE",
                "The payment gateway could not be reached; nothing was refunded",
            )
        raise ConflictError(
            "PAYMENT_NOT_REFUNDABLE", result.failure_message or "The gateway refused the refund"
        )

    async def succeed(self, payment: Payment, refund: Refund) -> Refund:
        """Record the gateway's yes: ledger record, payment status and event, refund status —
        one step. Without transactions the order still leaves a state reconciliation can
        finish: the ledger record first (deduplicated by refundId), the refund's status last."""
        now = utcnow()
        async with self.db.transaction() as session:
            await ledger.record_movement(
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
                await events.append(
                    self.db,
                    payment_event(EventType.PAYMENT_REFUNDED, updated, now, reference=refund.id),
                    session,
                )
            succeeded = await refunds.set_status(self.db, refund.id, "succeeded", session=session)
        if updated is not None:
            await self.cache.put(updated)
        log_business_event(
            "payment refunded", paymentId=payment.id, refundId=refund.id, amount=refund.amount
        )
        return succeeded or refund

    async def release(self, payment: Payment, refund: Refund, failure_code: str) -> None:
        """Give back the refund's reservation after the gateway's no; the refund failed."""
        now = utcnow()
        async with self.db.transaction() as session:
            updated = await self._end_reservation(
                payment, refund, now, released=True, session=session
            )
            await refunds.set_status(
                self.db, refund.id, "failed", failure_code=failure_code, session=session
            )
        if updated is not None:
            await self.cache.put(updated)

    async def _end_reservation(
        self, payment: Payment, refund: Refund, now: Any, *, released: bool, session: Any
    ) -> Payment | None:
        """Take the refund off `pendingRefunds` (giving its amount back when `released`) and
        set the status that the resulting `refundedAmount` implies, in one guarded update."""
        listed = {"pendingRefunds.refundId": refund.id}
        pull = {"$pull": {"pendingRefunds": {"refundId": refund.id}}}
        give_back = {"$inc": {"refundedAmount": -refund.amount}} if released else {}
        after = refund.amount if released else 0  # what leaves refundedAmount
        for _ in range(SETTLE_ATTEMPTS):
            current = await payments.find_by_id(self.db, payment.id, session)
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
            updated = await payments.update_where(
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
