"""The query parameters of a payment history: page, limit, status, a date range, the
merchant's order id and the cursors, parsed into the service's `HistoryQuery` (a date is a
whole business day in BUSINESS_TIMEZONE). Which of them may go together is the service's
rule (`InvalidCursor`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from fastapi import Depends, Query

from payments_api.config.constants import MAX_QUERY_INTEGER, PaymentStatus
from payments_api.errors import ValidationFailed
from payments_api.middleware.auth import ServicesDep
from payments_api.schemas.payments import MERCHANT_ORDER_ID_PATTERN
from payments_api.services.payment_history import HistoryQuery
from payments_api.services.registry import Services

MAX_PAGE_SIZE = 100


def _parse_instant(field: str, raw: str, *, end_of_day: bool, services: Services) -> datetime:
    """An ISO date (a whole business day, inclusive) or date-time (UTC unless it says)."""
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            zone = services.settings.timezone
            return _utc(datetime.combine(day, time.max if end_of_day else time.min, zone))
        instant = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed.of_field(field, "must be an ISO 8601 date or date-time") from None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else _utc(instant)


def _utc(instant: datetime) -> datetime:
    """`instant` in UTC; one that falls outside the years 1-9999 there (0001-01-01 in Seoul,
    9999-12-31T23:00-05:00) is that end of the range, not an OverflowError."""
    try:
        return instant.astimezone(UTC)
    except OverflowError:
        edge = datetime.min if instant.year == 1 else datetime.max
        return edge.replace(tzinfo=UTC)


INSTANT_QUERY: dict[str, Any] = {
    "max_length": 40,
    "description": "An ISO date (a whole business day in BUSINESS_TIMEZONE, inclusive) or "
    "date-time (UTC unless it names an offset)",
    # The whole schema (FastAPI's own anyOf of string and null would be replaced by this one).
    "json_schema_extra": {
        "anyOf": [
            {"type": "string", "format": "date"},
            {"type": "string", "format": "date-time", "maxLength": 40},
        ]
    },
}


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page is: by number, or beside a cursor payment."""

    page: int | None = None
    starting_after: str | None = None
    ending_before: str | None = None


def parse_history_query(
    services: Services,
    *,
    limit: int,
    status: PaymentStatus | None,
    start_date: str | None,
    end_date: str | None,
    merchant_order_id: str | None = None,
    position: Position | None = None,
) -> HistoryQuery:
    # `?startDate=` is a value, and not a date: a 422, not a missing filter.
    start = (
        None
        if start_date is None
        else _parse_instant("startDate", start_date, end_of_day=False, services=services)
    )
    end = (
        None
        if end_date is None
        else _parse_instant("endDate", end_date, end_of_day=True, services=services)
    )
    # A range that ends before it starts is no bad value, only an empty one: it matches no
    # payment (as Stripe's created[gte] > created[lte] does), so each date alone is the rule.
    position = position or Position()
    return HistoryQuery(
        page=position.page,
        limit=min(limit, MAX_PAGE_SIZE),
        status=status.value if status else None,
        start=start,
        end=end,
        merchant_order_id=merchant_order_id,
        starting_after=position.starting_after,
        ending_before=position.ending_before,
    )


CURSOR_QUERY: dict[str, Any] = {"min_length": 1, "max_length": 64}


async def history_query(
    services: ServicesDep,
    page: Annotated[
        int | None,
        Query(ge=1, le=MAX_QUERY_INTEGER, description="Default 1; not with a cursor"),
    ] = None,
    limit: Annotated[
        int,
        Query(ge=1, le=MAX_QUERY_INTEGER, description="1-100; larger values are clamped to 100"),
    ] = 20,
    status: PaymentStatus | None = None,
    start_date: Annotated[str | None, Query(alias="startDate", **INSTANT_QUERY)] = None,
    end_date: Annotated[str | None, Query(alias="endDate", **INSTANT_QUERY)] = None,
    merchant_order_id: Annotated[
        str | None,
        Query(
            alias="merchantOrderId", min_length=1, max_length=64, pattern=MERCHANT_ORDER_ID_PATTERN
        ),
    ] = None,
    starting_after: Annotated[
        str | None,
        Query(
            alias="startingAfter",
            description="A paymentId: the payments older than it",
            **CURSOR_QUERY,
        ),
    ] = None,
    ending_before: Annotated[
        str | None,
        Query(
            alias="endingBefore",
            description="A paymentId: the payments newer than it",
            **CURSOR_QUERY,
        ),
    ] = None,
) -> HistoryQuery:
    return parse_history_query(
        services,
        limit=limit,
        status=status,
        start_date=start_date,
        end_date=end_date,
        merchant_order_id=merchant_order_id,
        position=Position(page, starting_after, ending_before),
    )


History = Annotated[HistoryQuery, Depends(history_query)]
