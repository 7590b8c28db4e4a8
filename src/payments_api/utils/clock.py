"""Time in one place: UTC instants truncated to what MongoDB stores (milliseconds), and the
boundaries of the business day."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def utcnow() -> datetime:
    """Now, in UTC, at millisecond precision so a value reads back exactly as it was written."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: datetime) -> datetime:
    """Stored datetimes come back naive from some drivers; they are UTC by convention."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def business_day(instant: datetime, timezone: ZoneInfo) -> date:
    """The calendar day an instant belongs to in the business time zone."""
    return as_utc(instant).astimezone(timezone).date()


def iso_utc(value: datetime) -> str:
    """`2026-11-25T08:27:29.123Z`: the one way the API writes an instant."""
    return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")
