"""Prefixed, sortable ids: `pay_01JD…` — a ULID (48-bit millisecond time + 80 random bits)."""

from __future__ import annotations

import base64
import os
import random
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# RFC 4648's base32 alphabet, as base64.b32encode writes it, to Crockford's.
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())


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
    """128 bits as 26 Crockford digits: shifted to the top of 17 bytes and base32-encoded in
    C, the first 26 characters are the digits (a loop over them in Python was a request's
    tenth)."""
    encoded = base64.b32encode((value << 6).to_bytes(17, "big"))[:26]
    return encoded.translate(_FROM_RFC4648).decode("ascii")


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
