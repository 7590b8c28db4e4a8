"""The watch on failures no gateway "no" stands behind (`NOT_CHARGED`, `GATEWAY_UNAVAILABLE`):
for 24 hours, with backoff, each is looked up at the gateway again, and a charge (or an
authorization) that landed anyway is taken back there at once, logged as a business event and
counted. Part of reconciliation (services/reconciliation.py); each re-check is leased so no two
reconcilers make it at once (models/payment_claims.py)."""

from __future__ import annotations

from datetime import timedelta

from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.models import payment_claims
from payments_api.models.payment import Payment
from payments_api.services.gateway import GatewayClient
from payments_api.utils import workers
from payments_api.utils.logger import get_logger, log_business_event
from payments_api.utils.metrics import Metrics

logger = get_logger("late-charges")

MAX_RECHECK_INTERVAL = timedelta(hours=1)
"""The longest pause between two re-checks of a failure (the pauses double from twice
RECONCILE_AFTER_SECONDS), so a charge that lands during the 24 h watch (settlement's
RECHECK_FOR) is found within an hour of landing."""


class LateChargeWatch:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        gateway: GatewayClient,
        metrics: Metrics,
        clock: workers.Clock,
    ) -> None:
        self.settings = settings
        self.db = db
        self.gateway = gateway
        self.metrics = metrics
        self.clock = clock

    async def run_once(self) -> int:
        """Look again for a charge behind each failure whose re-check is due."""
        checked = 0
        while checked < workers.BATCH:
            now = self.clock()
            payment = await payment_claims.claim_recheck(
                self.db, now=now, lease_until=now + timedelta(seconds=workers.LEASE_SECONDS)
            )
            if payment is None:
                break
            try:
                await self._recheck(payment)
            except Exception:
                logger.exception("late-charge re-check failed", paymentId=payment.id)
            checked += 1
        return checked

    async def _recheck(self, payment: Payment) -> None:
        now = self.clock()
        result = await self.gateway.lookup(payment.id)
        if result.outcome in ("approved", "authorized"):
            refunded = await self.gateway.cancel(payment.id)
            if refunded.outcome == "approved":
                if await payment_claims.record_late_charge_refund(self.db, payment.id, now):
                    self.metrics.late_charges_refunded.inc()
                    log_business_event(
                        "late charge refunded",
                        paymentId=payment.id,
                        userId=payment.user_id,
                        merchantId=payment.merchant_id,
                        amount=payment.amount,
                        failureCode=payment.failure_code,
                    )
                return
            logger.error(
                "a late charge could not be refunded yet",
                paymentId=payment.id,
                gateway=refunded.outcome,
            )
        watching = payment.recheck_until is not None and now < payment.recheck_until
        await payment_claims.schedule_recheck(
            self.db, payment.id, now + self._recheck_interval(payment) if watching else None
        )

    def _recheck_interval(self, payment: Payment) -> timedelta:
        """After the first re-check (RECONCILE_AFTER_SECONDS after the failure), twice that,
        doubling with each re-check, at most an hour."""
        seconds = self.settings.reconcile_after_seconds * 2 ** min(payment.rechecks + 1, 16)
        return min(timedelta(seconds=seconds), MAX_RECHECK_INTERVAL)
