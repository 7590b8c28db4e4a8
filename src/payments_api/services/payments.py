"""Payments: create (exactly once, within the daily limit), read, history and cancel.

The create flow, each step safe to repeat:
1. idempotency lock on (user, key) in Redis, or a replay / 409 / 422;
2. the payment recorded `pending` (the unique (userId, idempotencyKey) index is the last word
   on the key), then its daily-limit hold taken by a guarded `$inc` — a refused hold deletes
   the payment again; both happen before any money moves, and a process that dies between
   them leaves a pending payment that reconciliation reverses at the gateway and fails (never
   charged), never an orphan hold that would shrink the user's limit;
3. the gateway asked, with the paymentId as its idempotency key, no transaction open;
4. settled through `SettlementService` (completed / failed) or left pending for reconciliation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from payments_api.config.constants import EventType, FailureCode, PaymentStatus
from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ServiceUnavailableError,
    UnauthorizedError,
    UnprocessableError,
)
from payments_api.models import event as events
from payments_api.models import ledger
from payments_api.models import merchant as merchants
from payments_api.models import payment as payments
from payments_api.models import user as users
from payments_api.models.payment import Payment, PendingRefund, public_view
from payments_api.services.auth import Principal
from payments_api.services.daily_limits import DailyLimitService
from payments_api.services.events import payment_event
from payments_api.services.gateway import GatewayClient
from payments_api.services.idempotency import (
    Claim,
    IdempotencyService,
    StoredResult,
    fingerprint,
    reused_key_error,
)
from payments_api.services.payment_cache import PaymentCache, cache_key
from payments_api.services.settlement import SettlementService
from payments_api.services.stats import StatsService
from payments_api.utils import ids
from payments_api.utils.cache import split_versioned
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import log_business_event

CANCEL_REFERENCE = "cancel"
GATEWAY_UNAVAILABLE_MESSAGE = "The payment gateway could not be reached; nothing was charged"


@dataclass(frozen=True, slots=True)
class NewPayment:
    amount: int
    merchant_id: str
    payment_method: str
    product_name: str
    currency: str

    def fingerprint(self) -> str:
        return fingerprint(
            {
                "amount": self.amount,
                "merchantId": self.merchant_id,
                "paymentMethod": self.payment_method,
                "productName": self.product_name,
                "currency": self.currency,
            }
        )


@dataclass(frozen=True, slots=True)
class CreateOutcome:
    """What the controller turns into a response.

    status_code: 201 completed, 202 pending, 402 declined, 503 gateway unreachable or never
    processed (NOT_CHARGED), 200 replay.
    """

    status_code: int
    payment: dict[str, Any]
    replayed: bool = False
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    page: int
    limit: int
    status: str | None
    start: datetime | None
    end: datetime | None


def is_party(principal: Principal, user_id: str, merchant_id: str) -> bool:
    """The payment's own user or its merchant (admins may read too, but that needs a lookup)."""
    if principal.kind == "merchant":
        return principal.id == merchant_id
    return principal.id == user_id


def not_found() -> NotFoundError:
    return NotFoundError("PAYMENT_NOT_FOUND", "Payment not found")


def _declined_error(payment: Payment) -> dict[str, Any]:
    return {
        "error": "PAYMENT_DECLINED",
        "message": payment.failure_message or "The payment was declined",
    }


def _unavailable_error() -> dict[str, Any]:
    return {"error": "GATEWAY_UNAVAILABLE", "message": GATEWAY_UNAVAILABLE_MESSAGE}


def _not_processed_error() -> dict[str, Any]:
    """The request never finished and the charge was reversed: not a decline."""
    return {
        "error": "PAYMENT_NOT_PROCESSED",
        "message": "The payment was not processed and nothing was charged; "
        "retry with a new Idempotency-Key",
    }


class PaymentService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        gateway: GatewayClient,
        idempotency: IdempotencyService,
        limits: DailyLimitService,
        cache: PaymentCache,
        stats: StatsService,
        settlement: SettlementService,
    ) -> None:
        self.settings = settings
        self.db = db
        self.gateway = gateway
        self.idempotency = idempotency
        self.limits = limits
        self.cache = cache
        self.stats = stats
        self.settlement = settlement

    # ---- create -------------------------------------------------------------------------

    async def create(self, user_id: str, key: str, request: NewPayment) -> CreateOutcome:
        if request.amount > self.settings.max_payment_amount:
            raise UnprocessableError(
                "AMOUNT_TOO_LARGE",
                f"The amount may not exceed {self.settings.max_payment_amount}",
                extra={"maxAmount": self.settings.max_payment_amount},
            )
        body_fingerprint = request.fingerprint()
        claim = await self.idempotency.begin(f"pay:{user_id}", key, body_fingerprint)
        if isinstance(claim, StoredResult):
            return await self._replay_stored(claim)
        try:
            outcome = await self._create_claimed(user_id, key, request, claim)
        except Exception:
            await self.idempotency.abandon(claim)
            raise
        return outcome

    async def _create_claimed(
        self, user_id: str, key: str, request: NewPayment, claim: Claim
    ) -> CreateOutcome:
        existing = await payments.find_by_idempotency_key(self.db, user_id, key)
        if existing is not None:  # Redis forgot the key; the database did not.
            outcome = self._replay_payment(existing, claim.fingerprint)
            await self.idempotency.abandon(claim)
            return outcome
        user = await users.find_by_id(self.db, user_id)
        if user is None:
            raise UnauthorizedError(message="Invalid or expired token")
        if not user.is_active:
            raise ForbiddenError("USER_INACTIVE", "This account is deactivated")
        merchant = await merchants.find_by_id(self.db, request.merchant_id)
        if merchant is None or not merchant.is_active:
            raise NotFoundError("MERCHANT_NOT_FOUND", "Merchant not found")

        now = utcnow()
        day = self.limits.day_of(now)
        payment = Payment(
            id=ids.payment_id(),
            user_id=user_id,
            merchant_id=merchant.id,
            amount=request.amount,
            currency=request.currency,
            payment_method=request.payment_method,
            product_name=request.product_name,
            status=PaymentStatus.PENDING,
            idempotency_key=key,
            request_fingerprint=claim.fingerprint,
            hold_day=day,
            created_at=now,
            updated_at=now,
        )
        try:
            await payments.insert(self.db, payment)
        except DuplicateKeyError:
            raced = await payments.find_by_idempotency_key(self.db, user_id, key)
            if raced is None:
                raise
            await self.idempotency.abandon(claim)
            return self._replay_payment(raced, claim.fingerprint)
        try:
            await self.limits.hold(
                user_id=user_id,
                day=day,
                payment_id=payment.id,
                amount=payment.amount,
                limit=user.daily_limit,
            )
        except BaseException:
            # Refused (or failed) before any money moved: the request leaves nothing behind.
            # Should this delete not happen, reconciliation fails the payment (never charged).
            await payments.delete_pending(self.db, payment.id)
            raise

        outcome = await self._charge(payment)
        await self.idempotency.finish(
            claim,
            StoredResult(
                claim.fingerprint,
                payment.id,
                outcome.status_code,
                {**outcome.error, "payment": outcome.payment} if outcome.error else None,
            ),
        )
        return outcome

    async def _charge(self, payment: Payment) -> CreateOutcome:
        result = await self.gateway.charge(
            payment_id=payment.id,
            amount=payment.amount,
            currency=payment.currency,
            payment_method=payment.payment_method,
        )
        if result.outcome == "unreachable":
            settled: Payment | None = await self.settlement.fail(
                payment, FailureCode.GATEWAY_UNAVAILABLE, GATEWAY_UNAVAILABLE_MESSAGE
            )
        else:
            settled = await self.settlement.settle(payment, result)
        if settled is None:
            await self.cache.put(payment)
            log_business_event("payment pending", paymentId=payment.id, userId=payment.user_id)
            return CreateOutcome(202, public_view(payment))
        return self._outcome_of(settled)

    def _outcome_of(self, payment: Payment) -> CreateOutcome:
        """The answer a settled (or still pending) payment gives to its create request."""
        view = public_view(payment)
        if payment.status == PaymentStatus.PENDING:
            return CreateOutcome(202, view)
        if payment.status == PaymentStatus.FAILED:
            if payment.failure_code == FailureCode.GATEWAY_UNAVAILABLE:
                return CreateOutcome(503, view, error=_unavailable_error())
            if payment.failure_code == FailureCode.NOT_CHARGED:
                return CreateOutcome(503, view, error=_not_processed_error())
            return CreateOutcome(402, view, error=_declined_error(payment))
        return CreateOutcome(201, view)

    async def _replay_stored(self, stored: StoredResult) -> CreateOutcome:
        payment = await payments.find_by_id(self.db, stored.resource_id)
        if payment is None:
            raise not_found()
        return self._replay(payment)

    def _replay_payment(self, payment: Payment, body_fingerprint: str) -> CreateOutcome:
        if payment.request_fingerprint != body_fingerprint:
            raise reused_key_error()
        return self._replay(payment)

    def _replay(self, payment: Payment) -> CreateOutcome:
        """A repeat of a finished request: the original 402 / 503, else the current state."""
        original = self._outcome_of(payment)
        if original.error is not None:
            return CreateOutcome(original.status_code, original.payment, True, original.error)
        return CreateOutcome(200, original.payment, replayed=True)

    # ---- read ---------------------------------------------------------------------------

    async def _may_read(self, principal: Principal, user_id: str, merchant_id: str) -> bool:
        if is_party(principal, user_id, merchant_id):
            return True
        if principal.kind == "merchant":
            return False
        user = await users.find_by_id(self.db, principal.id)
        return user is not None and user.is_admin and user.is_active

    async def read_json(
        self, principal: Principal, payment_id: str, prefetched: dict[str, Any] | None = None
    ) -> str:
        """The contract's payment object as JSON: from the cache when it is there (for its
        owner or merchant, no database and no re-serialisation), else from the database, then
        cached. `prefetched` holds cache entries already read in this request's round trip."""
        key = cache_key(payment_id)
        if prefetched is not None and key in prefetched:
            cached = split_versioned(prefetched[key])
        else:
            cached = await self.cache.get(payment_id)
        if cached is not None:
            owners: dict[str, Any] = json.loads(cached)
            if await self._may_read(principal, owners["userId"], owners["merchantId"]):
                return cached
            raise not_found()
        payment = await self.get_for_reader(principal, payment_id)
        return await self.cache.put(payment)

    async def get_for_reader(self, principal: Principal, payment_id: str) -> Payment:
        payment = await payments.find_by_id(self.db, payment_id)
        if payment is None or not await self._may_read(
            principal, payment.user_id, payment.merchant_id
        ):
            raise not_found()
        return payment

    async def history(
        self, *, user_id: str | None = None, merchant_id: str | None = None, query: HistoryQuery
    ) -> tuple[list[Payment], int]:
        filters: dict[str, Any] = {}
        if user_id is not None:
            filters["userId"] = user_id
        if merchant_id is not None:
            filters["merchantId"] = merchant_id
        if query.status:
            filters["status"] = query.status
        created: dict[str, datetime] = {}
        if query.start:
            created["$gte"] = query.start
        if query.end:
            created["$lte"] = query.end
        if created:
            filters["createdAt"] = created
        return await payments.find_page(
            self.db, filters, skip=(query.page - 1) * query.limit, limit=query.limit
        )

    # ---- cancel -------------------------------------------------------------------------

    async def cancel(self, user_id: str, payment_id: str, reason: str) -> Payment:
        """completed (nothing refunded) → cancelled: the whole charge is returned at the
        gateway, the amount released from the daily limit. The full amount is reserved on
        `refundedAmount` first, so a racing refund finds nothing left to take."""
        payment = await payments.find_by_id(self.db, payment_id)
        if payment is None or payment.user_id != user_id:
            raise not_found()
        in_flight = any(p.refund_id == CANCEL_REFERENCE for p in payment.pending_refunds)
        if not in_flight:
            now = utcnow()
            reserved = await payments.update_where(
                self.db,
                payment_id,
                {"status": PaymentStatus.COMPLETED.value, "refundedAmount": 0},
                {
                    "$set": {"refundedAmount": payment.amount},
                    "$push": {
                        "pendingRefunds": PendingRefund(
                            refund_id=CANCEL_REFERENCE, amount=payment.amount, reason=reason
                        ).to_mongo()
                    },
                },
                now=now,
            )
            if reserved is None:
                raise _not_cancellable()
            payment = reserved
        result = await self.gateway.cancel(payment_id)
        if result.outcome == "approved":
            return await self.finish_cancel(payment, reason)
        if result.outcome == "unknown":
            raise ServiceUnavailableError(
                "GATEWAY_UNAVAILABLE", "The gateway did not confirm the cancellation; retry"
            )
        await self.undo_cancel(payment)
        if result.outcome == "unreachable":
            raise ServiceUnavailableError("GATEWAY_UNAVAILABLE", GATEWAY_UNAVAILABLE_MESSAGE)
        raise _not_cancellable()

    async def finish_cancel(self, payment: Payment, reason: str) -> Payment:
        """Record the gateway's yes to a cancel (also used by reconciliation). The ledger
        record, the event and the hold release come first, each written at most once, and the
        state change last: a step that dies half-way keeps its pending cancel, which
        reconciliation finishes without writing anything twice."""
        now = utcnow()
        expected = payment.next_state(
            now,
            status=PaymentStatus.CANCELLED,
            cancel_reason=reason,
            cancelled_at=now,
            pending_refunds=[p for p in payment.pending_refunds if p.refund_id != CANCEL_REFERENCE],
        )
        async with self.db.transaction() as session:
            await ledger.record_movement(
                self.db,
                payment,
                "cancel",
                reference=payment.id,
                amount=payment.amount,
                description=f"Cancellation: {reason}",
                now=now,
                session=session,
            )
            await events.append(
                self.db, payment_event(EventType.PAYMENT_CANCELLED, expected, now), session
            )
            await self.limits.release(payment, session)
            updated = await payments.update_where(
                self.db,
                payment.id,
                {"pendingRefunds.refundId": CANCEL_REFERENCE},
                {
                    "$set": {
                        "status": PaymentStatus.CANCELLED.value,
                        "cancelReason": reason,
                        "cancelledAt": now,
                    },
                    "$pull": {"pendingRefunds": {"refundId": CANCEL_REFERENCE}},
                },
                now=now,
                session=session,
            )
            if updated is None:  # a concurrent retry finished it
                current = await payments.find_by_id(self.db, payment.id, session)
                if current is None or current.status != PaymentStatus.CANCELLED:
                    raise _not_cancellable()
                return current
        await self.cache.put(updated)
        await self.stats.invalidate(payment.user_id)
        log_business_event(
            "payment cancelled", paymentId=payment.id, userId=payment.user_id, amount=payment.amount
        )
        return updated

    async def undo_cancel(self, payment: Payment) -> None:
        """Give back the cancel's reservation after the gateway's no."""
        now = utcnow()
        restored = await payments.update_where(
            self.db,
            payment.id,
            {"pendingRefunds.refundId": CANCEL_REFERENCE},
            {
                "$set": {"refundedAmount": 0},
                "$pull": {"pendingRefunds": {"refundId": CANCEL_REFERENCE}},
            },
            now=now,
        )
        if restored is not None:
            await self.cache.put(restored)


def _not_cancellable() -> ConflictError:
    return ConflictError(
        "PAYMENT_NOT_CANCELLABLE", "Only a completed payment with nothing refunded can be cancelled"
    )
