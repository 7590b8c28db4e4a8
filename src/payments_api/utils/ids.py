"""Prefixed, sortable ids: `pay_01JD…` — a ULID (48-bit millisecond time + 80 random bits)."""

from __future__ import annotations

import os
import random
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


_DIGIT_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_PAIR_SHIFTS = range(120, -1, -10)


def ulid() -> str:
    """A 26-character Crockford base32 ULID; ids made later sort after earlier ones."""
    return _encode((time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big"))


class _RequestRandom:
    """The random part of request ids: a generator seeded from the OS once per process (and
    again in a forked child), not a system call per request. A request id must be unique,
    not secret; the ids that name resources take theirs from the OS (`ulid`)."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.generator = random.Random(os.urandom(32))  # noqa: S311 - uniqueness, not secrecy

    def bits(self) -> int:
        return self.generator.getrandbits(80)


_REQUEST_RANDOM = _RequestRandom()


def request_id() -> str:
    """A ULID for a request id (`X-Request-ID` when the client sent none)."""
    return _encode((time.time_ns() // 1_000_000) << 80 | _REQUEST_RANDOM.bits())


def _encode(value: int) -> str:
    """128 bits as 26 Crockford digits, two at a time: 13 look-ups of 10 bits in a table of
    every pair of digits (a loop over the 26 digits was a request's tenth)."""
    return "".join([_DIGIT_PAIRS[(value >> shift) & 1023] for shift in _PAIR_SHIFTS])


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
