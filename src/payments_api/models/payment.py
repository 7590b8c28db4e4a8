"""Payments. Every state change is a compare-and-set naming the state it expects; a miss
returns None and the service decides what that means."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import Field, model_validator
from pymongo import ReturnDocument

from payments_api.config.constants import CaptureMethod, PaymentStatus
from payments_api.config.database import Database, Session
from payments_api.models.base import Document, UtcDatetime
from payments_api.utils.clock import iso_utc

COLLECTION = "payments"

REFUNDABLE = [PaymentStatus.COMPLETED.value, PaymentStatus.PARTIALLY_REFUNDED.value]

COMPLETED_OR_LATER = frozenset(
    {
        PaymentStatus.COMPLETED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
        PaymentStatus.CANCELLED,
    }
)
"""Statuses a payment reaches only after a completion won (but a void's `cancelled`, which
captured nothing). A payment stored before `capturedAmount` existed (always an automatic one)
in one of them had been charged its whole amount."""

CANCEL_REFERENCE = "cancel"
"""The `refundId` a cancel's reservation of the whole amount is listed under in
`pendingRefunds`."""


class PendingRefund(Document):
    """An amount reserved on `refundedAmount` whose gateway answer is not recorded yet."""

    refund_id: str
    amount: int
    reason: str | None = None


class AuthorizationStep(Document):
    """The one capture or void an `authorized` payment is undergoing: set by a compare-and-set
    from none, so capture, cancel and expiry cannot both start, and kept until the gateway's
    answer is recorded (or, after its no, taken off again). `step_id` is the capture's
    idempotency key at the gateway, so asking again never captures twice."""

    kind: Literal["capture", "void"]
    step_id: str
    amount: int = 0
    """What a capture takes (a void takes nothing)."""
    reason: str | None = None
    """A void's `cancelReason`."""


class Payment(Document):
    id: str = Field(alias="_id")
    user_id: str
    merchant_id: str
    amount: int
    currency: str
    payment_method: str
    product_name: str
    status: PaymentStatus
    transaction_id: str | None = None
    refunded_amount: int = 0
    pending_refunds: list[PendingRefund] = Field(default_factory=list)
    failure_code: str | None = None
    failure_message: str | None = None
    cancel_reason: str | None = None
    capture_method: CaptureMethod = CaptureMethod.AUTOMATIC
    captured_amount: int = 0
    """What was charged: the whole amount once an automatic payment completed, the captured
    part of a manual one; refunds are bounded by it. Never changes once charged."""
    authorization_expires_at: UtcDatetime | None = None
    authorization_step: AuthorizationStep | None = None
    merchant_order_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    holds_order: bool | None = None
    """True while the payment holds its `merchantOrderId` (from its insert until it fails):
    only such payments are in ORDER_INDEX, which keeps an order to one of them."""
    idempotency_key: str
    request_fingerprint: str
    hold_day: str
    version: int = 1
    created_at: UtcDatetime
    updated_at: UtcDatetime
    completed_at: UtcDatetime | None = None
    cancelled_at: UtcDatetime | None = None
    next_recheck_at: UtcDatetime | None = None
    """While set, a failure no gateway "no" stands behind is re-checked for a late charge."""
    recheck_until: UtcDatetime | None = None
    rechecks: int = 0
    late_charge_refunded_at: UtcDatetime | None = None
    """When a charge that landed after the payment failed was found and refunded."""
    event_sequence: int = 0
    """How many events the payment's changes have produced: the last one's `data.sequence`
    (moved only by a `Transition`; never shown in the payment's view)."""

    @model_validator(mode="before")
    @classmethod
    def _captured_before_manual_capture(cls, raw: Any) -> Any:
        """A payment stored before `capturedAmount` existed had captured its amount if it
        was ever charged (there were only automatic payments then)."""
        if isinstance(raw, dict) and "capturedAmount" not in raw and "captured_amount" not in raw:
            charged = raw.get("status") in COMPLETED_OR_LATER
            return {**raw, "capturedAmount": raw.get("amount", 0) if charged else 0}
        return raw

    def next_state(self, now: datetime, **changes: object) -> Payment:
        """This payment as a compare-and-set with `changes` will leave it (events written
        before that change describe the state it creates)."""
        return self.model_copy(update={**changes, "updated_at": now, "version": self.version + 1})

    @property
    def cancel_reserved(self) -> bool:
        """A cancel holds the whole amount, its gateway answer not recorded yet."""
        return any(p.refund_id == CANCEL_REFERENCE for p in self.pending_refunds)

    @property
    def available_to_refund(self) -> int:
        """What a new refund may still take: the captured amount less settled and reserved
        refunds."""
        return self.captured_amount - self.refunded_amount

    @property
    def settled_refunded_amount(self) -> int:
        """What has been refunded for certain: reservations still awaiting the gateway are
        not counted (they may yet be given back)."""
        return self.refunded_amount - sum(pending.amount for pending in self.pending_refunds)


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of a payment, described once. `after` is the payment as the change
    leaves it (what the change's event describes); `update` is the MongoDB update that makes
    exactly that change, derived from `after`, so the two can never drift apart. It is one
    event's change: it moves `eventSequence` on by one, from the count its compare-and-set
    names (`guard`), so the event's `sequence` is the stored one or nothing is stored."""

    before: Payment
    after: Payment
    update: dict[str, Any]

    @property
    def guard(self) -> dict[str, Any]:
        """No other event's change came first (a payment stored before the counter has none)."""
        count = self.before.event_sequence
        return {"eventSequence": {"$in": [None, 0]} if count == 0 else count}

    @classmethod
    def of(
        cls, payment: Payment, now: datetime, *, ends_reservation: str | None = None, **changes: Any
    ) -> Transition:
        """`changes` by field name; `ends_reservation` takes the reservation of that refund
        (or cancel) off `pendingRefunds`. A change to `failed` lets go of the payment's
        `merchantOrderId` in the same update, whichever path fails it, so that the order is
        free for another try exactly when the failure is recorded."""
        pending = payment.pending_refunds
        if ends_reservation is not None:
            pending = [p for p in pending if p.refund_id != ends_reservation]
        fails = changes.get("status") == PaymentStatus.FAILED
        released = {"holds_order": None} if fails else {}
        sequence = payment.event_sequence + 1
        after = payment.next_state(
            now, **changes, **released, pending_refunds=pending, event_sequence=sequence
        )
        stored = after.model_dump(by_alias=True, include={*changes, "event_sequence"})
        update: dict[str, Any] = {"$set": {name: _plain(value) for name, value in stored.items()}}
        if ends_reservation is not None:
            update["$pull"] = {"pendingRefunds": {"refundId": ends_reservation}}
        if fails:
            update["$unset"] = {"holdsOrder": ""}
        return cls(payment, after, update)


def _plain(value: Any) -> Any:
    """A value as MongoDB stores it: an enum member by its value."""
    return value.value if isinstance(value, Enum) else value


def _payment(raw: dict[str, Any] | None) -> Payment | None:
    return Payment.from_mongo(raw) if raw else None


async def insert(db: Database, payment: Payment, session: Session = None) -> None:
    await db[COLLECTION].insert_one(payment.to_mongo(), session=session)


async def delete_pending(db: Database, payment_id: str) -> None:
    """Remove a payment refused before it reached the gateway (nothing moved)."""
    await db[COLLECTION].delete_one({"_id": payment_id, "status": PaymentStatus.PENDING.value})


async def find_by_id(db: Database, payment_id: str, session: Session = None) -> Payment | None:
    return _payment(await db[COLLECTION].find_one({"_id": payment_id}, session=session))


async def find_by_idempotency_key(db: Database, user_id: str, key: str) -> Payment | None:
    return _payment(await db[COLLECTION].find_one({"userId": user_id, "idempotencyKey": key}))


async def update_where(
    db: Database,
    payment_id: str,
    expected: dict[str, Any],
    update: dict[str, Any],
    *,
    now: datetime,
    session: Session = None,
) -> Payment | None:
    """Apply `update` if the payment still matches `expected`; the new document, or None.
    Every change bumps `version` (the read cache keeps the newest) and `updatedAt`."""
    update = {**update}
    update["$set"] = {**update.get("$set", {}), "updatedAt": now}
    update["$inc"] = {**update.get("$inc", {}), "version": 1}
    raw = await db[COLLECTION].find_one_and_update(
        {"_id": payment_id, **expected},
        update,
        return_document=ReturnDocument.AFTER,
        session=session,
    )
    return _payment(raw)


def _iso(value: datetime | None) -> str | None:
    return iso_utc(value) if value else None


def public_view(payment: Payment) -> dict[str, Any]:
    """The contract's `payment` object, JSON-ready: used by responses, the read cache and the
    events, so all three always agree."""
    return {
        "paymentId": payment.id,
        "userId": payment.user_id,
        "merchantId": payment.merchant_id,
        "amount": payment.amount,
        "currency": payment.currency,
        "paymentMethod": payment.payment_method,
        "productName": payment.product_name,
        "status": payment.status,
        "transactionId": payment.transaction_id,
        "refundedAmount": payment.settled_refunded_amount,
        "failureCode": payment.failure_code,
        "failureMessage": payment.failure_message,
        "cancelReason": payment.cancel_reason,
        "createdAt": _iso(payment.created_at),
        "updatedAt": _iso(payment.updated_at),
        "completedAt": _iso(payment.completed_at),
        "cancelledAt": _iso(payment.cancelled_at),
        "merchantOrderId": payment.merchant_order_id,
        "metadata": payment.metadata,
        "captureMethod": payment.capture_method,
        "capturedAmount": payment.captured_amount,
        "authorizationExpiresAt": _iso(payment.authorization_expires_at),
    }
