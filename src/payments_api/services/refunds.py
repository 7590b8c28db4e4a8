"""Refunds: never more than the payment's amount, whatever the concurrency.

A refund first reserves its amount on the payment (a guarded `$inc` of `refundedAmount`, with
the refund listed in `pendingRefunds`), then asks the gateway (idempotent on the refundId), then
records the outcome through `RefundSettlement` (services/refund_settlement.py), which
reconciliation uses too. A refusal gives the reservation back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import DuplicateKeyError

from payments_api.config.database import Database
from payments_api.models import payment as payment_store
from payments_api.models import refund as refund_store
from payments_api.models.payment import REFUNDABLE, Payment, PendingRefund
from payments_api.models.refund import Refund
from payments_api.services.auth import Principal
from payments_api.services.gateway import GatewayClient
from payments_api.services.idempotency import (
    IdempotencyKeyReused,
    IdempotencyService,
    StoredResult,
    fingerprint,
    key_scope,
)
from payments_api.services.payment_reads import PaymentNotFound, PaymentReadService
from payments_api.services.refund_errors import (
    AvailableAmountMismatch,
    PaymentNotRefundable,
    RefundExceedsAvailable,
    RefundGatewayUnavailable,
    RefundNotAllowed,
)
from payments_api.services.refund_settlement import RefundSettlement
from payments_api.utils import ids
from payments_api.utils.clock import utcnow


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    refund: Refund
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class RefundAsked:
    """What a refund request asks for: `amount` None is all that is left; `expected_available`,
    when given, what the caller expects is left (else nothing is refunded)."""

    amount: int | None
    reason: str
    metadata: dict[str, str] = field(default_factory=dict)
    expected_available: int | None = None

    def fingerprint(self, payment_id: str) -> str:
        """The body's digest for its Idempotency-Key; `metadata` and `expectedAvailableAmount`
        count only when given, so a body without them keeps the digest it had before they
        existed."""
        body: dict[str, Any] = {
            "paymentId": payment_id,
            "amount": self.amount,
            "reason": self.reason,
        }
        if self.metadata:
            body["metadata"] = self.metadata
        if self.expected_available is not None:
            body["expectedAvailableAmount"] = self.expected_available
        return fingerprint(body)


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    """A refund request's Idempotency-Key, as stored on the refund it makes."""

    scope: str
    fingerprint: str


class RefundService:
    def __init__(
        self,
        db: Database,
        gateway: GatewayClient,
        idempotency: IdempotencyService,
        settlement: RefundSettlement,
        reads: PaymentReadService,
    ) -> None:
        self.db = db
        self.reads = reads
        self.gateway = gateway
        self.idempotency = idempotency
        self.settlement = settlement

    async def list_for_reader(self, payment: Payment) -> list[Refund]:
        return await refund_store.for_payment(self.db, payment.id)

    async def refund(
        self,
        principal: Principal,
        payment_id: str,
        *,
        amount: int | None,
        reason: str,
        key: str | None,
        metadata: dict[str, str] | None = None,
        expected_available: int | None = None,
    ) -> RefundOutcome:
        asked = RefundAsked(amount, reason, metadata or {}, expected_available)
        payment = await self.reads.get_for_payee(principal, payment_id, RefundNotAllowed())
        if key is None:
            return await self._refund(principal, payment, asked, None)
        body = asked.fingerprint(payment_id)
        async with self.idempotency.claim(
            key_scope("refund", principal.id), key, body, still_replayable=self._refund_happened
        ) as claim:
            if claim.replay is not None:
                return RefundOutcome(await self._stored_refund(claim.replay), replayed=True)
            # The refund keeps its key as it always has (refunds made before hash tags are
            # still found by it), not in the Redis scope's form.
            keyed = KeyedRequest(f"refund:{principal.kind}:{principal.id}:{key}", body)
            outcome = await self._refund(principal, payment, asked, keyed)
            claim.made(outcome.refund.id)
            return outcome

    async def _stored_refund(self, stored: StoredResult) -> Refund:
        refund = await refund_store.find_by_id(self.db, stored.resource_id)
        if refund is None:
            raise PaymentNotFound()
        return refund

    async def _refund_happened(self, stored: StoredResult) -> bool:
        """A refund that failed after all is never replayed as one: its key tries again."""
        return (await self._stored_refund(stored)).status != "failed"

    async def _refund_of_key(self, keyed: KeyedRequest) -> Refund | None:
        """The refund an earlier request with this key made (when Redis forgot the key)."""
        existing = await refund_store.find_by_idempotency_scope(self.db, keyed.scope)
        if existing is not None and existing.request_fingerprint != keyed.fingerprint:
            raise IdempotencyKeyReused()
        return existing

    async def _refund(
        self,
        principal: Principal,
        payment: Payment,
        asked: RefundAsked,
        keyed: KeyedRequest | None,
    ) -> RefundOutcome:
        """Reserve, ask the gateway, record its answer."""
        if keyed is not None:
            earlier = await self._refund_of_key(keyed)
            if earlier is not None:
                return RefundOutcome(earlier, replayed=True)
        if payment.status not in REFUNDABLE:
            raise PaymentNotRefundable()
        available = payment.available_to_refund
        if asked.expected_available not in (None, available):
            raise AvailableAmountMismatch(available)
        value = asked.amount if asked.amount is not None else available
        if value <= 0 or value > available:
            raise RefundExceedsAvailable(available)
        refund = self._new_refund(principal, payment, value, asked, keyed)
        try:
            await refund_store.insert(self.db, refund)
        except DuplicateKeyError:  # a request with the same key raced this one
            assert keyed is not None
            existing = await self._refund_of_key(keyed)
            if existing is None:
                raise
            return RefundOutcome(existing, replayed=True)
        reserved = await self._reserve(payment, refund, asked.expected_available)
        return RefundOutcome(await self._ask_gateway(reserved, refund))

    @staticmethod
    def _new_refund(
        principal: Principal,
        payment: Payment,
        amount: int,
        asked: RefundAsked,
        keyed: KeyedRequest | None,
    ) -> Refund:
        now = utcnow()
        return Refund(
            id=ids.refund_id(),
            payment_id=payment.id,
            user_id=payment.user_id,
            merchant_id=payment.merchant_id,
            amount=amount,
            reason=asked.reason,
            metadata=asked.metadata,
            status="pending",
            requested_by=f"{principal.kind}:{principal.id}",
            idempotency_scope=keyed.scope if keyed else None,
            request_fingerprint=keyed.fingerprint if keyed else None,
            created_at=now,
            updated_at=now,
        )

    async def _reserve(self, payment: Payment, refund: Refund, expected: int | None) -> Payment:
        """The refund's amount reserved on the payment by one guarded update, or (the payment
        moved meanwhile) the refund deleted and the refusal that now applies. With `expected`
        the guard is that exactly that much is still left, which implies the bound (the
        refund's amount was checked against it): a read-then-check alone would let racing
        retries of one body all pass."""
        value = refund.amount
        refunded: int | dict[str, int] = {"$lte": payment.captured_amount - value}
        if expected is not None:
            refunded = payment.captured_amount - expected
        reserved = await payment_store.update_where(
            self.db,
            payment.id,
            {"status": {"$in": REFUNDABLE}, "refundedAmount": refunded},
            {
                "$inc": {"refundedAmount": value},
                "$push": {
                    "pendingRefunds": PendingRefund(refund_id=refund.id, amount=value).to_mongo()
                },
            },
            now=utcnow(),
        )
        if reserved is not None:
            return reserved
        await refund_store.delete(self.db, refund.id)
        current = await payment_store.find_by_id(self.db, payment.id)
        if current is None or current.status not in REFUNDABLE:
            raise PaymentNotRefundable()
        if expected is not None:
            raise AvailableAmountMismatch(current.available_to_refund)
        raise RefundExceedsAvailable(current.available_to_refund)

    async def _ask_gateway(self, reserved: Payment, refund: Refund) -> Refund:
        """The refund as the gateway's answer leaves it: succeeded, or still pending when the
        answer was lost (reconciliation asks again); a refusal gives the reservation back."""
        result = await self.gateway.refund(
            payment_id=reserved.id, refund_id=refund.id, amount=refund.amount
        )
        if result.outcome == "approved":
            return await self.settlement.succeed(reserved, refund)
        if result.outcome == "unknown":
            return refund
        await self.settlement.release(reserved, refund, result.failure_code or "GATEWAY_REFUSED")
        if result.outcome == "unreachable":
            raise RefundGatewayUnavailable()
        raise PaymentNotRefundable(
            message=result.failure_message or "The gateway refused the refund"
        )
