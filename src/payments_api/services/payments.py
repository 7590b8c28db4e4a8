"""Payments: create, exactly once and within the daily limit.

The create flow, each step safe to repeat:
1. the Idempotency-Key claimed in Redis (`IdempotencyService.claim`), or a replay / 409 / 422;
2. the payment recorded `pending` (its insert asks the unique indexes whether the key, or the
   order, made one already: models/payment_orders.py), then its daily-limit hold taken by a
   guarded `$inc` — a refused hold deletes the payment again;
   both before any money moves; a process that dies between them leaves a pending payment
   that reconciliation reverses at the gateway and fails, never an orphan hold;
3. the gateway asked to charge (or, for `captureMethod: manual`, to authorize), with the
   paymentId as its idempotency key, no transaction open;
4. settled through `SettlementService` (completed / authorized / failed) or left pending for
   reconciliation.

The service answers in the domain: the payment and whether this was a replay
(`CreatedPayment`), or an error naming why the payment failed (`PaymentFailed`,
services/payment_failures.py); the controller turns them into statuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymongo.errors import DuplicateKeyError

from payments_api.config.constants import CaptureMethod, FailureCode, PaymentStatus
from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.errors import (
    ConflictError,
    UnauthorizedError,
    UnprocessableError,
)
from payments_api.models import payment as payment_store
from payments_api.models import payment_orders
from payments_api.models.payment import Payment
from payments_api.models.user import User
from payments_api.services.auth import UserInactive
from payments_api.services.credentials import Credentials
from payments_api.services.daily_limits import DailyLimitService
from payments_api.services.gateway import GatewayClient
from payments_api.services.idempotency import (
    Claim,
    IdempotencyKeyReused,
    IdempotencyService,
    StoredResult,
    fingerprint,
    key_scope,
)
from payments_api.services.merchants import MerchantNotFound
from payments_api.services.payment_cache import PaymentCache
from payments_api.services.payment_failures import GATEWAY_UNAVAILABLE_MESSAGE, failure_of
from payments_api.services.payment_reads import PaymentNotFound
from payments_api.services.settlement import SettlementService
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import log_business_event
from payments_api.utils.tracing import tag_payment


@dataclass(frozen=True, slots=True)
class NewPayment:
    amount: int
    merchant_id: str
    payment_method: str
    product_name: str
    currency: str
    merchant_order_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    capture_method: CaptureMethod = CaptureMethod.AUTOMATIC

    def fingerprint(self) -> str:
        """The optional fields count only when given (`captureMethod` when manual): a body
        without them keeps the digest it had before they existed (a key used across a deploy
        still replays)."""
        manual = self.capture_method == CaptureMethod.MANUAL
        optional = {
            "merchantOrderId": self.merchant_order_id,
            "metadata": self.metadata,
            "captureMethod": self.capture_method.value if manual else None,
        }
        return fingerprint(
            {
                "amount": self.amount,
                "merchantId": self.merchant_id,
                "paymentMethod": self.payment_method,
                "productName": self.product_name,
                "currency": self.currency,
                **{name: value for name, value in optional.items() if value},
            }
        )


@dataclass(frozen=True, slots=True)
class CreatedPayment:
    """A create request's payment and whether it answers an earlier request with the same
    key. `create` returns only a completed, authorized or pending one (the gateway's answer not
    in yet); a failed one is raised as the `PaymentFailed` that says why."""

    payment: Payment
    replayed: bool = False


class AmountTooLarge(UnprocessableError):
    code = "AMOUNT_TOO_LARGE"
    message = "The amount is over MAX_PAYMENT_AMOUNT (`maxAmount`)"
    body_fields = ("maxAmount",)

    def __init__(self, max_amount: int) -> None:
        super().__init__(
            message=f"The amount may not exceed {max_amount}", extra={"maxAmount": max_amount}
        )


class DuplicateOrderId(ConflictError):
    code = "DUPLICATE_ORDER_ID"
    message = "This merchant already has a payment for this merchantOrderId that has not failed"


def answer(created: CreatedPayment) -> CreatedPayment:
    """What a create request answers: its payment, or (failed) the error that says why."""
    if created.payment.status == PaymentStatus.FAILED:
        raise failure_of(created.payment, created.replayed)
    return created


class PaymentService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        gateway: GatewayClient,
        idempotency: IdempotencyService,
        limits: DailyLimitService,
        cache: PaymentCache,
        settlement: SettlementService,
        credentials: Credentials,
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.db = db
        self.gateway = gateway
        self.idempotency = idempotency
        self.limits = limits
        self.cache = cache
        self.settlement = settlement

    async def create(self, user_id: str, key: str, request: NewPayment) -> CreatedPayment:
        """The payment this request (or the first with its key) made, charged exactly once;
        `PaymentFailed` when it failed."""
        if request.amount > self.settings.max_payment_amount:
            raise AmountTooLarge(self.settings.max_payment_amount)
        async with self.idempotency.claim(
            key_scope("pay", user_id), key, request.fingerprint()
        ) as claim:
            if claim.replay is not None:
                created = await self._replay_stored(claim.replay)
            else:
                created = await self._create_once(user_id, key, request, claim)
        return answer(created)

    async def _create_once(
        self, user_id: str, key: str, request: NewPayment, claim: Claim
    ) -> CreatedPayment:
        """With the key's lock held: a new payment, recorded, held against the daily limit,
        then charged; or the payment the key made before (Redis forgot it), replayed.

        No look-up of the key before the insert: the unique index on (userId, idempotencyKey)
        refuses the insert of a key that made a payment, whichever request came first, so the
        key is looked up only once the request is refused — by an index, or before the insert
        for its payer or merchant — and a key that made a payment replays it whatever was
        refused since, as it did when the look-up came first."""
        try:
            user = await self._active_payer(user_id)
            merchant = await self.credentials.merchant(request.merchant_id)
            if merchant is None or not merchant.is_active:
                raise MerchantNotFound()
            payment = self._new_payment(user_id, merchant.id, key, claim.fingerprint, request)
            tag_payment(payment.id)
            await payment_store.insert(self.db, payment)
        except (UnauthorizedError, UserInactive, MerchantNotFound, DuplicateKeyError) as refused:
            made = await payment_store.find_by_idempotency_key(self.db, user_id, key)
            if made is not None:
                return self._replay_payment(made, claim.fingerprint)
            if isinstance(refused, DuplicateKeyError) and payment_orders.is_order_clash(refused):
                raise DuplicateOrderId() from refused
            raise
        await self._hold(payment, user)
        claim.made(payment.id)
        return CreatedPayment(await self._charge(payment))

    async def _active_payer(self, user_id: str) -> User:
        """The payer as the credential check just read it (services/credentials.py: at most
        TRUST_SECONDS old, so a deactivation, and a daily limit an admin changed, hold on every
        process within that time, and at once on the process that made the change)."""
        user = await self.credentials.user(user_id)
        if user is None:
            raise UnauthorizedError(message="Invalid or expired token")
        if not user.is_active:
            raise UserInactive()
        return user

    def _new_payment(
        self, user_id: str, merchant_id: str, key: str, body_fingerprint: str, request: NewPayment
    ) -> Payment:
        now = utcnow()
        return Payment(
            id=ids.payment_id(),
            user_id=user_id,
            merchant_id=merchant_id,
            amount=request.amount,
            currency=request.currency,
            payment_method=request.payment_method,
            product_name=request.product_name,
            merchant_order_id=request.merchant_order_id,
            metadata=request.metadata,
            capture_method=request.capture_method,
            holds_order=True if request.merchant_order_id is not None else None,
            status=PaymentStatus.PENDING,
            idempotency_key=key,
            request_fingerprint=body_fingerprint,
            hold_day=self.limits.day_of(now),
            created_at=now,
            updated_at=now,
        )

    async def _hold(self, payment: Payment, user: User) -> None:
        """The payment's hold on the user's daily limit; refused (or failed), the request
        leaves nothing behind, since nothing moved: the hold is given back (a hold whose write
        landed before its answer was lost is taken) and the payment deleted. Should either
        not happen, reconciliation fails the payment (never charged), which gives back its
        hold."""
        try:
            await self.limits.hold(
                user_id=payment.user_id,
                day=payment.hold_day,
                payment_id=payment.id,
                amount=payment.amount,
                limit=user.daily_limit,
            )
        except BaseException:
            await self.limits.release(payment)
            await payment_store.delete_pending(self.db, payment.id)
            raise

    async def _charge(self, payment: Payment) -> Payment:
        """Ask the gateway once to charge (or, for a manual capture, to authorize); the payment
        as settled by its answer, or still pending."""
        result = await self.gateway.charge(
            payment_id=payment.id,
            amount=payment.amount,
            currency=payment.currency,
            payment_method=payment.payment_method,
            capture=payment.capture_method == CaptureMethod.AUTOMATIC,
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
            return payment
        return settled

    async def _replay_stored(self, stored: StoredResult) -> CreatedPayment:
        payment = await payment_store.find_by_id(self.db, stored.resource_id)
        if payment is None:
            raise PaymentNotFound()
        return CreatedPayment(payment, replayed=True)

    def _replay_payment(self, payment: Payment, body_fingerprint: str) -> CreatedPayment:
        if payment.request_fingerprint != body_fingerprint:
            raise IdempotencyKeyReused()
        return CreatedPayment(payment, replayed=True)
