"""The payment histories of a user and of a merchant: pages by number, or cursor pages for lists
that grow while they are read (`startingAfter` / `endingBefore` a paymentId, as Stripe's).

A cursor is one of the caller's own payments; anything else is `InvalidCursor`, the same
answer for an unknown id and for someone else's payment, so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payments_api.config.database import Database
from payments_api.errors import InvalidCursor
from payments_api.models import payment as payment_store
from payments_api.models import payment_pages
from payments_api.models.payment import Payment


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    page: int | None
    """The page asked for; None when the query names none (page 1, or a cursor page)."""
    limit: int
    status: str | None
    start: datetime | None
    end: datetime | None
    merchant_order_id: str | None = None
    starting_after: str | None = None
    ending_before: str | None = None


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose history: a user's (`userId`) or a merchant's (`merchantId`)."""

    field: str
    id: str

    def owns(self, payment: Payment) -> bool:
        owner = payment.user_id if self.field == "userId" else payment.merchant_id
        return owner == self.id


@dataclass(frozen=True, slots=True)
class HistoryPage:
    payments: list[Payment]
    has_more: bool
    next_cursor: str | None
    """The last payment's id when older payments match."""
    prev_cursor: str | None = None
    """The first payment's id when newer payments match (cursor pages only)."""
    page: int | None = None
    """Set (with `total`) for a page by number, None for a cursor page."""
    total: int = 0


def filters_of(owner: Owner, query: HistoryQuery) -> dict[str, Any]:
    """The owner's payments the query's filters keep (the equality fields, then the range)."""
    filters: dict[str, Any] = {owner.field: owner.id}
    if query.status:
        filters["status"] = query.status
    if query.merchant_order_id is not None:
        filters["merchantOrderId"] = query.merchant_order_id
    created: dict[str, datetime] = {}
    if query.start:
        created["$gte"] = query.start
    if query.end:
        created["$lte"] = query.end
    if created:
        filters["createdAt"] = created
    return filters


class PaymentHistoryService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(self, owner: Owner, query: HistoryQuery) -> HistoryPage:
        """One page of the owner's payments matching the query, newest first."""
        filters = filters_of(owner, query)
        if query.starting_after is not None and query.ending_before is not None:
            raise InvalidCursor.both()
        if query.starting_after is None and query.ending_before is None:
            return await self._numbered(filters, query.page or 1, query.limit)
        if query.page is not None:
            raise InvalidCursor.with_page()
        if query.starting_after is not None:
            cursor = await self._cursor(owner, "startingAfter", query.starting_after)
            return await self._after(filters, cursor, query.limit)
        assert query.ending_before is not None
        cursor = await self._cursor(owner, "endingBefore", query.ending_before)
        return await self._before(filters, cursor, query.limit)

    async def _cursor(self, owner: Owner, name: str, payment_id: str) -> Payment:
        payment = await payment_store.find_by_id(self.db, payment_id)
        if payment is None or not owner.owns(payment):
            raise InvalidCursor.unknown(name, "payments")
        return payment

    async def _numbered(self, filters: dict[str, Any], page: int, limit: int) -> HistoryPage:
        found, total = await payment_pages.numbered_page(
            self.db, filters, skip=(page - 1) * limit, limit=limit + 1
        )
        payments, has_more = found[:limit], len(found) > limit
        return HistoryPage(
            payments,
            has_more=has_more,
            next_cursor=payments[-1].id if has_more else None,
            page=page,
            total=total,
        )

    async def _after(self, filters: dict[str, Any], cursor: Payment, limit: int) -> HistoryPage:
        """Older than the cursor: one more than asked says whether older ones remain."""
        found = await payment_pages.after(self.db, filters, cursor, limit=limit + 1)
        payments, has_older = found[:limit], len(found) > limit
        has_newer = bool(payments) and await payment_pages.any_newer(self.db, filters, payments[0])
        return self._cursor_page(payments, has_more=has_older, older=has_older, newer=has_newer)

    async def _before(self, filters: dict[str, Any], cursor: Payment, limit: int) -> HistoryPage:
        """Newer than the cursor, the nearest `limit`: one more says whether newer ones remain."""
        found = await payment_pages.before(self.db, filters, cursor, limit=limit + 1)
        has_newer = len(found) > limit
        payments = found[1:] if has_newer else found
        has_older = bool(payments) and await payment_pages.any_older(self.db, filters, payments[-1])
        return self._cursor_page(payments, has_more=has_newer, older=has_older, newer=has_newer)

    @staticmethod
    def _cursor_page(
        payments: list[Payment], *, has_more: bool, older: bool, newer: bool
    ) -> HistoryPage:
        return HistoryPage(
            payments,
            has_more=has_more,
            next_cursor=payments[-1].id if older else None,
            prev_cursor=payments[0].id if newer else None,
        )
