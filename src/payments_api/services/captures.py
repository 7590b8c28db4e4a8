"""Capture: an authorized payment's amount taken, in whole or in part, by its merchant or an
admin; the rest of the hold is let go at the gateway and on the daily limit at once.

Exactly one of capture, cancel (a void, services/voids.py) and expiry wins: each begins with one
compare-and-set that sets the payment's `authorizationStep` where there is none
(models/authorization_steps.py), so any other finds it set and is refused (409), or, for the
expiry, does nothing. The step stays until the gateway's answer is recorded: its yes finishes
the capture (services/payment_steps.py), its no — or no connection at all on the first
attempt — takes the step off again, and no answer leaves it for reconciliation, which asks
again (`ask_again`). The gateway is idempotent on the step's id, so asking again never
captures twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database
from payments_api.errors import (
    ConflictError,
    ForbiddenError,
    ServiceUnavailableError,
    UnprocessableError,
)
from payments_api.models import authorization_steps
from payments_api.models import payment as payment_store
from payments_api.models.payment import AuthorizationStep, Payment, Transition
from payments_api.services.auth import Principal
from payments_api.services.gateway import GatewayClient
from payments_api.services.idempotency import (
    IdempotencyService,
    StoredResult,
    fingerprint,
    key_scope,
)
from payments_api.services.payment_reads import PaymentNotFound, PaymentReadService
from payments_api.services.payment_steps import Movement, PaymentSteps, Step
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import get_logger, log_business_event
from payments_api.utils.metrics import Metrics

logger = get_logger("captures")


class PaymentNotCapturable(ConflictError):
    code = "PAYMENT_NOT_CAPTURABLE"
    message = "Only an authorized payment can be captured, and only once"


class CaptureExceedsAuthorized(UnprocessableError):
    code = "CAPTURE_EXCEEDS_AUTHORIZED"
    message = "The capture exceeds the authorized amount (`authorizedAmount`)"
    body_fields = ("authorizedAmount",)

    def __init__(self, authorized_amount: int) -> None:
        super().__init__(extra={"authorizedAmount": authorized_amount})


class CaptureNotAllowed(ForbiddenError):
    message = "Only the merchant or an admin can capture a payment"


class CaptureGatewayUnavailable(ServiceUnavailableError):
    code = "GATEWAY_UNAVAILABLE"
    message = "The payment gateway could not be reached; nothing was captured"


@dataclass(frozen=True, slots=True)
class Captured:
    """A capture request's payment: `completed`, or still `authorized` while the gateway's
    answer is not in (reconciliation asks again); `replayed` for a repeated Idempotency-Key."""

    payment: Payment
    replayed: bool = False


def capture_under_way(payment: Payment) -> AuthorizationStep | None:
    step = payment.authorization_step
    return step if step is not None and step.kind == "capture" else None


class CaptureService:
    def __init__(
        self,
        db: Database,
        gateway: GatewayClient,
        idempotency: IdempotencyService,
        reads: PaymentReadService,
        steps: PaymentSteps,
        metrics: Metrics,
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.idempotency = idempotency
        self.reads = reads
        self.steps = steps
        self.metrics = metrics

    async def capture(
        self, principal: Principal, payment_id: str, amount: int | None, key: str | None
    ) -> Captured:
        """Take `amount` (default: all) of the authorization, by its merchant or an admin."""
        payment = await self.reads.get_for_payee(principal, payment_id, CaptureNotAllowed())
        if key is None:
            return Captured(await self._capture(payment, amount))
        body = fingerprint({"paymentId": payment_id, "amount": amount})
        async with self.idempotency.claim(
            key_scope("capture", principal.id), key, body, still_replayable=self._capture_stands
        ) as claim:
            if claim.replay is not None:
                return Captured(await self._stored(claim.replay), replayed=True)
            captured = await self._capture(payment, amount)
            claim.made(payment.id)
            return Captured(captured)

    async def _stored(self, stored: StoredResult) -> Payment:
        payment = await payment_store.find_by_id(self.db, stored.resource_id)
        if payment is None:
            raise PaymentNotFound()
        return payment

    async def _capture_stands(self, stored: StoredResult) -> bool:
        """A replay reports the capture only while it happened or still may: once its step
        was taken off (the gateway said no), the key tries again."""
        payment = await self._stored(stored)
        return payment.captured_amount > 0 or capture_under_way(payment) is not None

    async def _capture(self, payment: Payment, amount: int | None) -> Payment:
        if payment.status != PaymentStatus.AUTHORIZED or payment.authorization_step is not None:
            raise PaymentNotCapturable()
        value = payment.amount if amount is None else amount
        if value > payment.amount:
            raise CaptureExceedsAuthorized(payment.amount)
        now = utcnow()
        expires_at = payment.authorization_expires_at
        if expires_at is not None and expires_at <= now:
            raise PaymentNotCapturable(message="The authorization has expired")
        step = AuthorizationStep(kind="capture", step_id=ids.new_id("cap"), amount=value)
        begun = await authorization_steps.begin(
            self.db, payment.id, step, now, {"authorizationExpiresAt": {"$gt": now}}
        )
        if begun is None:
            raise PaymentNotCapturable()
        return await self._ask(begun, step, first=True)

    async def ask_again(self, payment: Payment) -> None:
        """Reconciliation of a capture whose answer was lost (or whose process died)."""
        step = capture_under_way(payment)
        if step is None:
            return
        try:
            await self._ask(payment, step, first=False)
        except PaymentNotCapturable:
            logger.warning("a capture was refused on reconciliation", paymentId=payment.id)

    async def _ask(self, payment: Payment, step: AuthorizationStep, *, first: bool) -> Payment:
        """The capture as the gateway's answer leaves it: completed; still authorized (the
        step kept) when there was no answer — or no connection on a later attempt, since an
        earlier one may have landed; its step taken off after a no."""
        result = await self.gateway.capture(
            payment_id=payment.id, capture_id=step.step_id, amount=step.amount
        )
        if result.outcome == "approved":
            return await self.finish(payment, step, result.transaction_id)
        if result.outcome == "unknown" or (result.outcome == "unreachable" and not first):
            logger.warning("capture not confirmed yet", paymentId=payment.id)
            return payment
        restored = await authorization_steps.end(self.db, payment.id, step, utcnow())
        if restored is not None:
            await self.steps.cache.put(restored)
        if result.outcome == "unreachable":
            raise CaptureGatewayUnavailable()
        logger.error("gateway refused a capture", paymentId=payment.id, gateway=result.failure_code)
        raise PaymentNotCapturable(message=result.failure_message or "The gateway refused")

    async def finish(
        self, payment: Payment, step: AuthorizationStep, transaction_id: str | None
    ) -> Payment:
        """Record the gateway's yes: completed with `capturedAmount`, the `payment` ledger
        record of it, the rest of the daily-limit hold given back, `payment.completed`."""
        now = utcnow()
        change = Transition.of(
            payment,
            now,
            status=PaymentStatus.COMPLETED,
            captured_amount=step.amount,
            transaction_id=transaction_id or payment.transaction_id,
            completed_at=now,
            authorization_step=None,
        )
        movement = Movement("payment", step.amount, f"Payment for {payment.product_name}")
        taken = await self.steps.take(
            Step(
                change,
                EventType.PAYMENT_COMPLETED,
                authorization_steps.doing(step),
                movement=movement,
                trim_to=step.amount,
            )
        )
        if taken.won:
            self.metrics.authorizations.labels("captured").inc()
            log_business_event(
                "payment captured",
                paymentId=payment.id,
                merchantId=payment.merchant_id,
                amount=step.amount,
                authorizedAmount=payment.amount,
            )
        return taken.payment
