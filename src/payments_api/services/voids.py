"""Void: an authorization let go, nothing charged — by a cancel of its user, its merchant or an
admin (services/cancellations.py), or by the worker once it expires (services/reconciliation.py).

As for a capture (services/captures.py), a void begins by setting the payment's
`authorizationStep` where there is none, so exactly one of capture, cancel and expiry goes on;
the gateway's yes finishes it (`cancelled`, the hold given back, `payment.cancelled`, no ledger
record), its no takes the step off, and no answer leaves it to be asked again (the gateway is
idempotent on the paymentId).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from payments_api.config.constants import AUTHORIZATION_EXPIRED, EventType, PaymentStatus
from payments_api.config.database import Database
from payments_api.models import authorization_steps
from payments_api.models.payment import AuthorizationStep, Payment, Transition
from payments_api.services.gateway import GatewayClient
from payments_api.services.payment_steps import PaymentSteps, Step
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import get_logger, log_business_event
from payments_api.utils.metrics import Metrics

logger = get_logger("voids")

VoidOutcome = Literal["voided", "unknown", "unreachable", "refused", "not_authorized"]
"""`unknown`: no answer (the step stays); `unreachable`: no connection, nothing happened (the
step is off); `refused`: the gateway said no; `not_authorized`: nothing to void, or another
step began first."""


@dataclass(frozen=True, slots=True)
class Voided:
    outcome: VoidOutcome
    payment: Payment


def void_under_way(payment: Payment) -> AuthorizationStep | None:
    step = payment.authorization_step
    return step if step is not None and step.kind == "void" else None


class VoidService:
    def __init__(
        self, db: Database, gateway: GatewayClient, steps: PaymentSteps, metrics: Metrics
    ) -> None:
        self.db = db
        self.gateway = gateway
        self.steps = steps
        self.metrics = metrics

    async def void(self, payment: Payment, reason: str) -> Voided:
        """Void the authorization: begun here unless a void is under way already (then asked
        again, with its own reason), asked of the gateway, finished by its yes."""
        step = void_under_way(payment)
        first = step is None
        if step is None:
            if payment.status != PaymentStatus.AUTHORIZED:
                return Voided("not_authorized", payment)
            step = AuthorizationStep(kind="void", step_id=ids.new_id("void"), reason=reason)
            begun = await authorization_steps.begin(self.db, payment.id, step, utcnow())
            if begun is None:
                return Voided("not_authorized", payment)
            payment = begun
        result = await self.gateway.cancel(payment.id)
        if result.outcome == "approved":
            return Voided("voided", await self.finish(payment, step))
        if result.outcome == "unknown" or (result.outcome == "unreachable" and not first):
            return Voided("unknown", payment)
        restored = await authorization_steps.end(self.db, payment.id, step, utcnow())
        if restored is not None:
            await self.steps.cache.put(restored)
        if result.outcome == "unreachable":
            return Voided("unreachable", payment)
        logger.error("gateway refused a void", paymentId=payment.id, gateway=result.failure_code)
        return Voided("refused", payment)

    async def ask_again(self, payment: Payment) -> None:
        """Reconciliation of a void whose answer was lost (or whose process died)."""
        step = void_under_way(payment)
        if step is not None:
            await self.void(payment, step.reason or "cancelled")

    async def finish(self, payment: Payment, step: AuthorizationStep) -> Payment:
        """Record the gateway's yes to a void: cancelled, nothing charged (no ledger record),
        the hold given back, `payment.cancelled`."""
        now = utcnow()
        change = Transition.of(
            payment,
            now,
            status=PaymentStatus.CANCELLED,
            cancel_reason=step.reason,
            cancelled_at=now,
            authorization_step=None,
        )
        taken = await self.steps.take(
            Step(change, EventType.PAYMENT_CANCELLED, authorization_steps.doing(step))
        )
        if taken.won:
            expired = step.reason == AUTHORIZATION_EXPIRED
            self.metrics.authorizations.labels("expired" if expired else "voided").inc()
            log_business_event(
                "authorization voided",
                paymentId=payment.id,
                merchantId=payment.merchant_id,
                amount=payment.amount,
                cancelReason=step.reason,
            )
        return taken.payment
