"""Events: built in the same step as the change they describe (the outbox), then delivered by
the dispatcher — published to the Redis stream `payments:events` and POSTed, signed, to the
merchant's webhook — at least once, with exponential backoff and jitter for at least 24 h,
after which the event is `dead`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database
from payments_api.config.redis import RedisClient
from payments_api.config.settings import Settings
from payments_api.models import event as event_store
from payments_api.models import merchant as merchant_store
from payments_api.models.event import Attempt, Delivery, Event
from payments_api.models.payment import Transition, public_view
from payments_api.services.webhooks import post_webhook, signature_header, unsafe_reason
from payments_api.utils import ids, workers
from payments_api.utils.leases import LeaseKeeper
from payments_api.utils.logger import get_logger
from payments_api.utils.metrics import Metrics
from payments_api.utils.tracing import payment_span

logger = get_logger("events")

# An event's lease (workers.LEASE_SECONDS) and the most one pass delivers (workers.BATCH) are
# the worker loops' shared ones: utils/workers.py.

STREAM = "payments:events"
"""The Redis stream every event is published to: its name is part of the contract."""
STREAM_MAXLEN = 100_000
"""The stream is trimmed to about this many entries (approximately, which keeps trimming cheap)
so it cannot grow Redis's memory without bound; a reader further behind than that misses the
oldest, which the events collection still holds."""
MAX_HOLD_SECONDS = 60
"""The longest one delivery keeps renewing its lease (publish, a 10 s webhook call, writes)."""
FIRST_RETRY_SECONDS = 15
"""The first retry's delay before jitter (so 7.5-15 s): inside the contract's "first retry
within 30 s" with room for a loop's pause. Also how long an event whose handling raised waits."""
MAX_RETRY_SECONDS = 3600
"""Retries back off to at most an hour apart, so a receiver that is back is reached within
the hour."""
RETRY_FOR = timedelta(hours=24)
"""How long a delivery is retried before its event is dead: the contract's "at least 24 h"."""


def dedupe_key(event_type: EventType, payment_id: str, reference: str | None = None) -> str:
    """The key that makes one change's event unique (models/event.py)."""
    return f"{event_type.value}:{payment_id}:{reference or ''}"


def payment_event(
    event_type: EventType,
    change: Transition,
    now: datetime,
    reference: str | None = None,
    *,
    draft: bool = False,
) -> Event:
    """The event of one change: the payment as the change leaves it, the change's place among
    the payment's changes (`sequence`) and the status it left (`previousStatus`), so a receiver
    of deliveries out of order can drop what is older than what it has seen. `reference` tells
    apart changes of one type (refunds). A `draft` is delivered only once its step publishes it
    (models/event.py)."""
    payment = change.after
    return Event(
        id=ids.event_id(),
        type=event_type,
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        dedupe_key=dedupe_key(event_type, payment.id, reference),
        reference=reference,
        data={
            "payment": public_view(payment),
            "sequence": payment.event_sequence,
            "previousStatus": PaymentStatus(change.before.status).value,
        },
        status="draft" if draft else "pending",
        next_attempt_at=now,
        created_at=now,
    )


def retry_delay(failed_attempts: int, jitter: float) -> timedelta:
    """15 s, 30 s, 1 min, … capped at 1 h, each scaled by `jitter` in [0.5, 1.0] (so the first
    retry comes within 30 s and retries of many events do not arrive in lockstep)."""
    base = min(FIRST_RETRY_SECONDS * 2 ** max(0, failed_attempts - 1), MAX_RETRY_SECONDS)
    return timedelta(seconds=base * jitter)


def new_delivery(url: str, now: datetime) -> Delivery:
    return Delivery(delivery_id=ids.new_id("dlv"), url=url, created_at=now)


class EventDispatcher:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        redis: RedisClient,
        http: httpx.AsyncClient,
        metrics: Metrics,
        *,
        clock: workers.Clock = workers.SYSTEM_CLOCK,
        jitter: Callable[[], float] | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.http = http
        self.metrics = metrics
        self.clock = clock
        self.jitter = jitter or (lambda: random.uniform(0.5, 1.0))  # noqa: S311 - not crypto
        self.worker_id = worker_id or workers.new_worker_id()

    async def run_once(self) -> int:
        """Deliver every due event (at most workers.BATCH); the number handled."""
        handled = 0
        while handled < workers.BATCH:
            now = self.clock()
            event = await event_store.claim_due(
                self.db, self.worker_id, now, now + timedelta(seconds=workers.LEASE_SECONDS)
            )
            if event is None:
                break
            try:
                with payment_span("deliver event", event.payment_id):
                    async with self._lease_kept(event):
                        await self._handle(event)
            except Exception:
                logger.exception("event dispatch failed", eventId=event.id)
                await self._release(event.id, now + timedelta(seconds=FIRST_RETRY_SECONDS))
            handled += 1
        return handled

    def _lease_kept(self, event: Event) -> LeaseKeeper:
        """The event's lease, renewed while this worker still holds it."""

        async def renew() -> bool:
            lease_until = self.clock() + timedelta(seconds=workers.LEASE_SECONDS)
            return await event_store.renew_lease(self.db, event.id, self.worker_id, lease_until)

        return LeaseKeeper(
            renew,
            every=workers.LEASE_SECONDS / 3,
            max_seconds=MAX_HOLD_SECONDS,
            what="event lease",
            eventId=event.id,
        )

    async def _release(self, event_id: str, next_attempt_at: datetime) -> None:
        await event_store.update_leased(
            self.db,
            event_id,
            self.worker_id,
            {"$set": {"lockedBy": None, "lockedUntil": None, "nextAttemptAt": next_attempt_at}},
        )

    async def _handle(self, event: Event) -> None:
        if not event.published:
            await self._publish(event)
        merchant = await merchant_store.find_by_id(self.db, event.merchant_id)
        if merchant is None or not merchant.webhook_url:
            await self._finish(event, "delivered", event.deliveries)
            return
        deliveries = list(event.deliveries)
        if not deliveries or deliveries[-1].url != merchant.webhook_url:
            if deliveries and deliveries[-1].status == "pending":
                deliveries[-1] = deliveries[-1].model_copy(update={"status": "dead"})
            deliveries.append(new_delivery(merchant.webhook_url, self.clock()))
        delivery = deliveries[-1]
        now = self.clock()
        body = json.dumps(event.envelope(), separators=(",", ":")).encode()
        blocked = await unsafe_reason(delivery.url, production=self.settings.is_production)
        if blocked:
            attempt = Attempt(
                attempted_at=now, error=f"webhook URL refused: {blocked}", duration_ms=0
            )
            ok = False
        else:
            secrets = merchant.signing_secrets(now)
            signature = signature_header(secrets, int(now.timestamp()), body)
            result = await post_webhook(self.http, delivery.url, body, signature)
            attempt = Attempt(
                attempted_at=now,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
            )
            ok = result.ok
        delivery = delivery.model_copy(update={"attempts": [*delivery.attempts, attempt]})
        if ok:
            deliveries[-1] = delivery.model_copy(update={"status": "delivered"})
            self.metrics.events_delivered.inc()
            await self._finish(event, "delivered", deliveries)
            return
        self.metrics.events_failed.inc()
        if now - delivery.created_at >= RETRY_FOR:
            deliveries[-1] = delivery.model_copy(update={"status": "dead"})
            self.metrics.events_dead.inc()
            logger.error("webhook delivery dead", eventId=event.id, merchantId=event.merchant_id)
            await self._finish(event, "dead", deliveries)
            return
        deliveries[-1] = delivery
        retry_at = now + retry_delay(len(delivery.attempts), self.jitter())
        await event_store.update_leased(
            self.db,
            event.id,
            self.worker_id,
            {
                "$set": {
                    "deliveries": [d.to_mongo() for d in deliveries],
                    "nextAttemptAt": retry_at,
                    "lockedBy": None,
                    "lockedUntil": None,
                }
            },
        )

    async def _publish(self, event: Event) -> None:
        envelope = event.envelope()
        fields: dict[Any, Any] = {
            "id": event.id,
            "type": str(envelope["type"]),
            "data": json.dumps(envelope["data"], separators=(",", ":")),
        }
        await self.redis.xadd(STREAM, fields, maxlen=STREAM_MAXLEN, approximate=True)
        await event_store.update_leased(
            self.db, event.id, self.worker_id, {"$set": {"published": True}}
        )

    async def _finish(self, event: Event, status: str, deliveries: list[Delivery]) -> None:
        await event_store.update_leased(
            self.db,
            event.id,
            self.worker_id,
            {
                "$set": {
                    "status": status,
                    "deliveries": [d.to_mongo() for d in deliveries],
                    "lockedBy": None,
                    "lockedUntil": None,
                }
            },
        )
