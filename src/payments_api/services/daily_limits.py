"""The user's daily limit: a hold taken before the gateway is asked, given back when the payment
fails or is cancelled (a void included), and given back in part when a capture takes less than
was authorized. The business day follows BUSINESS_TIMEZONE."""

from __future__ import annotations

from datetime import datetime

from payments_api.config.database import Database, Session
from payments_api.config.settings import Settings
from payments_api.errors import UnprocessableError
from payments_api.models import daily_limit as daily_limit_store
from payments_api.models.daily_limit import HoldResult
from payments_api.models.payment import Payment
from payments_api.utils.clock import business_day

HOLD_ATTEMPTS = 5
"""Bound on retries after losing the race to create a new day's document. One loss means the
document exists, so the next attempt is a plain guarded update; five covers any pile-up."""


class DailyLimitExceeded(UnprocessableError):
    code = "DAILY_LIMIT_EXCEEDED"
    message = "This payment would exceed your daily limit"
    body_fields = ("remainingToday",)

    def __init__(self, remaining_today: int) -> None:
        super().__init__(extra={"remainingToday": remaining_today})
        self.remaining_today = remaining_today


class DailyLimitService:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    def day_of(self, instant: datetime) -> str:
        return business_day(instant, self.settings.timezone).isoformat()

    async def spent(self, user_id: str, day: str) -> int:
        current = await daily_limit_store.find(self.db, user_id, day)
        return int(current["spent"]) if current else 0

    async def hold(
        self, *, user_id: str, day: str, payment_id: str, amount: int, limit: int
    ) -> None:
        """Hold `amount` against the day's limit, or `DailyLimitExceeded`. Safe under any
        concurrency: the guard is part of the one update that changes `spent`."""
        if amount <= limit:
            for _ in range(HOLD_ATTEMPTS):
                held = await daily_limit_store.try_hold(
                    self.db, user_id, day, payment_id, amount, limit
                )
                if held is HoldResult.HELD:
                    return
                if held is HoldResult.OVER_LIMIT:
                    break
        raise DailyLimitExceeded(max(0, limit - await self.spent(user_id, day)))

    async def release(self, payment: Payment, session: Session = None) -> bool:
        """Give back what `payment` holds on the day it was made (after a capture of less than
        its amount, what was captured); False when it held nothing."""
        return await daily_limit_store.release(
            self.db,
            payment.user_id,
            payment.hold_day,
            payment.id,
            payment.amount,
            trimmed_to=payment.captured_amount,
            session=session,
        )

    async def trim_to_capture(
        self, payment: Payment, captured: int, session: Session = None
    ) -> bool:
        """A capture of less than was authorized: the rest of the hold given back, once."""
        if captured >= payment.amount:
            return False
        return await daily_limit_store.trim(
            self.db,
            payment.user_id,
            payment.hold_day,
            payment.id,
            payment.amount - captured,
            session,
        )
