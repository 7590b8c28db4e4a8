"""Time in one place: UTC instants truncated to what MongoDB stores (milliseconds), and the
boundaries of the business day."""

from __future__ import annotations

import time
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


class _Seconds:
    """The date and time of day of the current second, formatted once per second."""

    second = -1
    text = ""


_SECONDS = _Seconds()


def iso_now(digits: int = 3) -> str:
    """Now as `iso_utc` writes it (`digits` 3) or with microseconds (6), without building a
    datetime: for what is written on every request (/health, the access line)."""
    now = time.time()
    second = int(now)
    if second != _SECONDS.second:
        _SECONDS.second = second
        _SECONDS.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    fraction = int((now - second) * 10**digits)
    return f"{_SECONDS.text}.{fraction:0{digits}d}Z"
