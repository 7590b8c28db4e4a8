"""The user's daily limit: a hold taken before the gateway is asked, given back when the payment
fails or is cancelled. The business day follows BUSINESS_TIMEZONE."""

from __future__ import annotations

from datetime import datetime

from payments_api.config.database import Database, Session
from payments_api.config.settings import Settings
from payments_api.errors import UnprocessableError
from payments_api.models import daily_limit
from payments_api.models.payment import Payment
from payments_api.utils.clock import business_day

HOLD_ATTEMPTS = 5


class DailyLimitService:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    def day_of(self, instant: datetime) -> str:
        return business_day(instant, self.settings.timezone).isoformat()

    async def spent(self, user_id: str, day: str) -> int:
        current = await daily_limit.find(self.db, user_id, day)
        return int(current["spent"]) if current else 0

    async def hold(
        self, *, user_id: str, day: str, payment_id: str, amount: int, limit: int
    ) -> None:
        """Hold `amount` against the day's limit, or 422 DAILY_LIMIT_EXCEEDED. Safe under any
        concurrency: the guard is part of the one update that changes `spent`."""
        if amount <= limit:
            for _ in range(HOLD_ATTEMPTS):
                held = await daily_limit.try_hold(self.db, user_id, day, payment_id, amount, limit)
                if held is True:
                    return
                if held is False:
                    break
        remaining = max(0, limit - await self.spent(user_id, day))
        raise UnprocessableError(
            "DAILY_LIMIT_EXCEEDED",
            "This payment would exceed your daily limit",
            extra={"remainingToday": remaining},
        )

    async def release(self, payment: Payment, session: Session = None) -> bool:
        """Give back what `payment` held on the day it was made; False when it held nothing."""
        return await daily_limit.release(
            self.db, payment.user_id, payment.hold_day, payment.id, payment.amount, session
        )
