"""Prefixed, sortable ids: `pay_01JD…` — a ULID (48-bit millisecond time + 80 random bits)."""

from __future__ import annotations

import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid() -> str:
    """A 26-character Crockford base32 ULID; ids made later sort after earlier ones."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    return f"{prefix}_{ulid()}"


def user_id() -> str:
    return new_id("usr")


def merchant_id() -> str:
    return new_id("mch")


def payment_id() -> str:
    return new_id("pay")


def refund_id() -> str:
    return new_id("re")


def transaction_id() -> str:
    return new_id("txn")


def event_id() -> str:
    return new_id("evt")


def api_key_id() -> str:
    return new_id("key")
