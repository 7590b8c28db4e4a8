"""Settling a pending payment by the gateway's answer: `completed` (charged), `authorized` (a
manual capture's authorization) or `failed`, each one step with its records
(services/payment_steps.py).

The create flow and reconciliation both settle through here, so they can never disagree. Each
settlement turns on a compare-and-set from `pending`: whoever settles first wins, and a second
attempt returns the state the first one left.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from payments_api.config.constants import (
    UNANSWERED_FAILURES,
    EventType,
    FailureCode,
    PaymentStatus,
)
from payments_api.config.database import Database
from payments_api.models import event as event_store
from payments_api.models import payment as payment_store
from payments_api.models.event import Event
from payments_api.models.payment import Payment, Transition
from payments_api.services.gateway import GatewayResult
from payments_api.services.payment_steps import (
    OUTCOME_OF_EVENT,
    Movement,
    PaymentSteps,
    Step,
    StepTaken,
    is_outcome,
)
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import get_logger, log_business_event
from payments_api.utils.metrics import Metrics

PENDING = {"status": PaymentStatus.PENDING.value}
RECHECK_FOR = timedelta(hours=24)
"""How long a failure no gateway "no" stands behind is watched for a charge that lands."""

NOT_CHARGED_MESSAGE = (
    "The gateway's answer was lost and the charge was reversed: nothing was charged"
)

logger = get_logger("settlement")


class SettlementService:
    def __init__(
        self,
        db: Database,
        steps: PaymentSteps,
        metrics: Metrics,
        *,
        first_recheck_after: timedelta,
        authorization_ttl: timedelta,
    ) -> None:
        self.db = db
        self.steps = steps
        self.metrics = metrics
        self.first_recheck_after = first_recheck_after
        self.authorization_ttl = authorization_ttl

    async def settle(self, payment: Payment, result: GatewayResult) -> Payment | None:
        """Settle by what the gateway said of the charge: approved → completed; authorized →
        authorized; declined, or reversed (so never charged) → failed. None for anything that
        is not an answer."""
        if result.outcome == "approved":
            return await self.complete(payment, result.transaction_id)
        if result.outcome == "authorized":
            return await self.authorize(payment, result.transaction_id)
        if result.outcome == "declined":
            return await self.fail(
                payment,
                result.failure_code or "CARD_DECLINED",
                result.failure_message or "The payment was declined",
            )
        if result.outcome == "reversed":
            return await self.fail(payment, FailureCode.NOT_CHARGED, NOT_CHARGED_MESSAGE)
        return None

    async def _settle(self, step: Step) -> StepTaken:
        taken = await self.steps.take(step)
        if not taken.won and taken.payment.status != step.change.after.status:
            logger.error(
                "settlement disagrees with an earlier one",
                paymentId=taken.payment.id,
                wanted=step.change.after.status,
                found=taken.payment.status,
            )
        return taken

    async def complete(self, payment: Payment, transaction_id: str | None) -> Payment:
        """pending → completed, with the `payment` ledger record, the event and the stats."""
        now = utcnow()
        change = Transition.of(
            payment,
            now,
            status=PaymentStatus.COMPLETED,
            transaction_id=transaction_id,
            captured_amount=payment.amount,
            completed_at=now,
        )
        movement = Movement("payment", payment.amount, f"Payment for {payment.product_name}")
        taken = await self._settle(
            Step(change, EventType.PAYMENT_COMPLETED, PENDING, movement=movement)
        )
        if not taken.won:
            return taken.payment
        self.metrics.payments.labels("completed").inc()
        log_business_event(
            "payment completed",
            paymentId=payment.id,
            userId=payment.user_id,
            merchantId=payment.merchant_id,
            amount=payment.amount,
            currency=payment.currency,
        )
        return taken.payment

    async def authorize(self, payment: Payment, transaction_id: str | None) -> Payment:
        """pending → authorized: the amount is held at the gateway (and on the daily limit,
        since the create), nothing is charged, so no ledger record; expiring
        AUTHORIZATION_TTL_SECONDS from now."""
        now = utcnow()
        change = Transition.of(
            payment,
            now,
            status=PaymentStatus.AUTHORIZED,
            transaction_id=transaction_id,
            authorization_expires_at=now + self.authorization_ttl,
        )
        taken = await self._settle(Step(change, EventType.PAYMENT_AUTHORIZED, PENDING))
        if not taken.won:
            return taken.payment
        self.metrics.authorizations.labels("authorized").inc()
        log_business_event(
            "payment authorized",
            paymentId=payment.id,
            userId=payment.user_id,
            merchantId=payment.merchant_id,
            amount=payment.amount,
            currency=payment.currency,
        )
        return taken.payment

    async def fail(self, payment: Payment, failure_code: str, failure_message: str) -> Payment:
        """pending → failed: the daily-limit hold is given back and the event written. A
        failure no gateway "no" stands behind is watched for a late charge for 24 hours."""
        now = utcnow()
        watch: dict[str, Any] = {}
        if failure_code in UNANSWERED_FAILURES:
            watch = {
                "next_recheck_at": now + self.first_recheck_after,
                "recheck_until": now + RECHECK_FOR,
            }
        change = Transition.of(
            payment,
            now,
            status=PaymentStatus.FAILED,
            failure_code=failure_code,
            failure_message=failure_message,
            **watch,
        )
        taken = await self._settle(Step(change, EventType.PAYMENT_FAILED, PENDING))
        if not taken.won:
            return taken.payment
        self.metrics.payments.labels("failed").inc()
        log_business_event(
            "payment failed",
            paymentId=payment.id,
            userId=payment.user_id,
            failureCode=failure_code,
        )
        return taken.payment

    async def recover_draft(self, draft: Event) -> None:
        """Finish or discard the draft of a step that died before it published or discarded
        it, by what the payment's state says happened. Left alone: a payment still pending
        (the pending pass settles it through this same code), one whose cancel is still
        reserved (the cancel pass, `CancelService.finish_cancel`), and one amid a capture or a
        void (the authorization pass)."""
        current = await payment_store.find_by_id(self.db, draft.payment_id)
        if current is None:
            await event_store.discard_draft(self.db, draft.dedupe_key)
            return
        cancelling = draft.type == EventType.PAYMENT_CANCELLED and current.cancel_reserved
        stepping = current.authorization_step is not None
        if current.status == PaymentStatus.PENDING or cancelling or stepping:
            return
        outcome = OUTCOME_OF_EVENT.get(EventType(draft.type))
        if outcome is not None and is_outcome(current, outcome):
            async with self.db.transaction() as session:
                await self.steps.publish(current, draft, session)
            await self.steps.after_change(current)
            logger.warning("finished a step that died half-way", paymentId=current.id)
        else:
            await self.steps.lost(current, draft)
            logger.warning("discarded the records of a losing step", paymentId=current.id)
