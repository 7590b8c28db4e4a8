"""Reconciliation: settle what a lost gateway answer or a dead process left half-done.

- A payment `pending` for longer than RECONCILE_AFTER_SECONDS is looked up at the gateway by
  its paymentId and settled through `SettlementService`, the code the create flow uses:
  approved → completed, declined → failed (hold released). "No record" is not "never
  charged" — the charge request may still be on its way — so such a payment is first
  reversed at the gateway (which then refuses any later charge with that id); only a
  confirmed reversal fails it (`NOT_CHARGED`). A reversal refused because the charge exists
  answers with that charge, which settles the payment as usual.
- A failure no gateway "no" stands behind (`NOT_CHARGED`, `GATEWAY_UNAVAILABLE`) is re-checked
  at the gateway for 24 hours, with backoff; a charge that landed anyway is refunded there at
  once, logged as a business event and counted (services/late_charges.py).
- An authorization past its `authorizationExpiresAt` that nobody is capturing or voiding is
  voided (`cancelReason` `authorization_expired`), and a capture or void whose gateway answer
  was lost is asked again (services/captures.py, services/voids.py).
- A settlement that died after writing its draft event is finished or discarded by the
  payment's state (`SettlementService.recover_draft`).
- A refund or cancel reserved on a payment (`pendingRefunds`) with no recorded answer is asked
  again (the gateway is idempotent on the refundId and the paymentId) and then recorded, or its
  reservation given back.
- A refund that never got its reservation (the process died in between) is marked failed;
  one whose ledger record exists but whose status and event were never written (the process
  died after its compare-and-set) gets them: its event is the draft it wrote before.

Each payment is worked on by one reconciler at a time: a lease, as for events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from payments_api.config.constants import AUTHORIZATION_EXPIRED, EventType, PaymentStatus
from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.models import authorization_steps, payment_claims
from payments_api.models import event as event_store
from payments_api.models import ledger as ledger_store
from payments_api.models import payment as payment_store
from payments_api.models import refund as refund_store
from payments_api.models.payment import CANCEL_REFERENCE, Payment, PendingRefund
from payments_api.services.cancellations import CancelService
from payments_api.services.captures import CaptureService
from payments_api.services.gateway import GatewayClient
from payments_api.services.late_charges import LateChargeWatch
from payments_api.services.refund_settlement import RefundSettlement
from payments_api.services.settlement import SettlementService
from payments_api.services.voids import VoidService
from payments_api.utils import workers
from payments_api.utils.leases import LeaseKeeper
from payments_api.utils.logger import get_logger
from payments_api.utils.metrics import Metrics
from payments_api.utils.tracing import payment_span

logger = get_logger("reconciliation")

# A payment's reconciliation lease (workers.LEASE_SECONDS) and the most one pass takes on of
# each kind of work (workers.BATCH) are the worker loops' shared ones: utils/workers.py.

MAX_HOLD_SECONDS = 120
"""The longest the handling of one payment keeps renewing its lease (a few gateway calls)."""


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        gateway: GatewayClient,
        settlement: SettlementService,
        cancellations: CancelService,
        refunds: RefundSettlement,
        captures: CaptureService,
        voids: VoidService,
        metrics: Metrics,
        *,
        clock: workers.Clock = workers.SYSTEM_CLOCK,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.gateway = gateway
        self.settlement = settlement
        self.cancellations = cancellations
        self.refunds = refunds
        self.captures = captures
        self.voids = voids
        self.metrics = metrics
        self.clock = clock
        self.worker_id = worker_id or workers.new_worker_id()
        self.late_charges = LateChargeWatch(settings, db, gateway, metrics, clock)

    async def run_once(self) -> int:
        """One pass; the number of payments looked at."""
        handled = 0
        settle_after = timedelta(seconds=self.settings.reconcile_after_seconds)
        passes: list[tuple[dict[str, Any], timedelta, Callable[[Payment], Awaitable[None]]]] = [
            ({"status": PaymentStatus.PENDING.value}, settle_after, self._settle_pending),
            ({"pendingRefunds.0": {"$exists": True}}, settle_after, self._settle_refunds),
            (authorization_steps.UNDER_WAY, settle_after, self._settle_step),
            (self._expired_authorizations(), timedelta(0), self._expire),
        ]
        for query, untouched_for, handle in passes:
            while handled < workers.BATCH:
                payment = await self._claim(query, untouched_for)
                if payment is None:
                    break
                try:
                    with payment_span("reconcile payment", payment.id):
                        async with self._lease_kept(payment):
                            await handle(payment)
                except Exception:
                    logger.exception("reconciliation failed", paymentId=payment.id)
                handled += 1
        handled += await self.late_charges.run_once()
        await self._recover_drafts()
        await self._fail_unreserved_refunds()
        await self._update_oldest_pending()
        return handled

    async def _claim(self, query: dict[str, Any], untouched_for: timedelta) -> Payment | None:
        """One payment matching `query`, unchanged for `untouched_for`, leased to this
        reconciler."""
        now = self.clock()
        return await payment_claims.claim_stale(
            self.db,
            query,
            older_than=now - untouched_for,
            worker_id=self.worker_id,
            now=now,
            lease_until=now + timedelta(seconds=workers.LEASE_SECONDS),
        )

    def _lease_kept(self, payment: Payment) -> LeaseKeeper:
        """The payment's lease, renewed while this reconciler still holds it."""

        async def renew() -> bool:
            lease_until = self.clock() + timedelta(seconds=workers.LEASE_SECONDS)
            return await payment_claims.renew_reconcile_lease(
                self.db, payment.id, self.worker_id, lease_until
            )

        return LeaseKeeper(
            renew,
            every=workers.LEASE_SECONDS / 3,
            max_seconds=MAX_HOLD_SECONDS,
            what="reconciliation lease",
            paymentId=payment.id,
        )

    async def _settle_pending(self, payment: Payment) -> None:
        result = await self.gateway.lookup(payment.id)
        if result.outcome == "not_found":
            result = await self.gateway.reverse(payment.id)
        settled = await self.settlement.settle(payment, result)
        if settled is None:
            logger.warning(
                "gateway could not settle a pending payment yet",
                paymentId=payment.id,
                gateway=result.outcome,
            )
            return
        self.metrics.reconciled.labels(settled.status).inc()
        logger.info("pending payment reconciled", paymentId=payment.id, status=settled.status)

    def _expired_authorizations(self) -> dict[str, Any]:
        return {
            "status": PaymentStatus.AUTHORIZED.value,
            "authorizationExpiresAt": {"$lte": self.clock()},
            "authorizationStep": None,
        }

    async def _settle_step(self, payment: Payment) -> None:
        """A capture or void whose gateway answer was lost, asked again."""
        await self.captures.ask_again(payment)
        await self.voids.ask_again(payment)

    async def _expire(self, payment: Payment) -> None:
        """Void an authorization nobody captured in time (a capture or cancel that began
        first wins: then this does nothing)."""
        voided = await self.voids.void(payment, AUTHORIZATION_EXPIRED)
        if voided.outcome != "not_authorized":
            logger.info("expired authorization", paymentId=payment.id, outcome=voided.outcome)

    async def _recover_drafts(self) -> None:
        cutoff = self.clock() - timedelta(seconds=self.settings.reconcile_after_seconds)
        for draft in await event_store.stale_drafts(self.db, cutoff, workers.BATCH):
            try:
                if draft.type == EventType.PAYMENT_REFUNDED:
                    await self.refunds.recover_draft(draft)
                else:
                    await self.settlement.recover_draft(draft)
            except Exception:
                logger.exception("draft recovery failed", paymentId=draft.payment_id)

    async def _settle_refunds(self, payment: Payment) -> None:
        for pending in payment.pending_refunds:
            if pending.refund_id == CANCEL_REFERENCE:
                await self._settle_cancel(payment, pending)
            else:
                await self._settle_refund(payment, pending)

    async def _settle_cancel(self, payment: Payment, pending: PendingRefund) -> None:
        result = await self.gateway.cancel(payment.id)
        if result.outcome == "approved":
            await self.cancellations.finish_cancel(payment, pending.reason or "cancelled")
            self.metrics.reconciled.labels("cancelled").inc()
        elif result.outcome == "declined":
            await self.cancellations.undo_cancel(payment)
            self.metrics.reconciled.labels("cancel_refused").inc()

    async def _settle_refund(self, payment: Payment, pending: PendingRefund) -> None:
        refund = await refund_store.find_by_id(self.db, pending.refund_id)
        if refund is None:
            logger.error("reserved refund has no record", paymentId=payment.id)
            return
        result = await self.gateway.refund(
            payment_id=payment.id, refund_id=refund.id, amount=pending.amount
        )
        if result.outcome == "approved":
            await self.refunds.succeed(payment, refund)
            self.metrics.reconciled.labels("refunded").inc()
        elif result.outcome == "declined":
            await self.refunds.release(payment, refund, result.failure_code or "GATEWAY_REFUSED")
            self.metrics.reconciled.labels("refund_refused").inc()

    async def _fail_unreserved_refunds(self) -> None:
        cutoff = self.clock() - timedelta(seconds=self.settings.reconcile_after_seconds)
        for refund in await refund_store.stale_pending(self.db, cutoff, workers.BATCH):
            payment = await payment_store.find_by_id(self.db, refund.payment_id)
            reserved = payment is not None and any(
                p.refund_id == refund.id for p in payment.pending_refunds
            )
            if reserved:
                continue  # _settle_refunds finishes it
            if payment is not None and await ledger_store.has_movement(
                self.db, "refund", refund.id
            ):
                # It succeeded, and the process died after its compare-and-set: its event (the
                # draft it wrote, published once) and the refund's status.
                await self.refunds.finish_recorded(refund)
            else:
                await refund_store.set_status(
                    self.db, refund.id, "failed", failure_code="NOT_RESERVED"
                )

    async def _update_oldest_pending(self) -> None:
        oldest = await payment_claims.oldest_created_at(self.db, PaymentStatus.PENDING.value)
        age = (self.clock() - oldest).total_seconds() if oldest else 0.0
        self.metrics.oldest_pending_age.set(max(0.0, age))
