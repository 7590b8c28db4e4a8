"""Prefixed ULIDs, SHA-256 digests and random secrets."""

from __future__ import annotations

import itertools
import os
import re
import string
from collections.abc import Callable

import pytest

from payments_api.utils import ids
from payments_api.utils.crypto import random_secret, sha256_hex

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_MAKERS: list[tuple[Callable[[], str], str]] = [
    (ids.user_id, "usr"),
    (ids.merchant_id, "mch"),
    (ids.payment_id, "pay"),
    (ids.refund_id, "re"),
    (ids.transaction_id, "txn"),
    (ids.event_id, "evt"),
]


def _decode_time(ulid: str) -> int:
    """The millisecond timestamp in a ULID's first ten characters."""
    value = 0
    for char in ulid[:10]:
        value = value * 32 + CROCKFORD.index(char)
    return value


@pytest.mark.parametrize(("make", "prefix"), ID_MAKERS, ids=[p for _, p in ID_MAKERS])
def test_id_has_its_prefix_and_26_crockford_characters(
    make: Callable[[], str], prefix: str
) -> None:
    value = make()

    assert re.fullmatch(rf"{prefix}_[{CROCKFORD}]{{26}}", value), value


@pytest.mark.parametrize(("make", "prefix"), ID_MAKERS, ids=[p for _, p in ID_MAKERS])
def test_ids_are_unique(make: Callable[[], str], prefix: str) -> None:
    values = {make() for _ in range(2000)}

    assert len(values) == 2000


def test_ulid_uses_no_ambiguous_letters() -> None:
    letters = "".join(ids.ulid() for _ in range(500))

    assert not set(letters) & set("ILOU" + string.ascii_lowercase)


def test_ulid_encodes_the_creation_millisecond(monkeypatch: pytest.MonkeyPatch) -> None:
    millis = 1_732_000_000_123
    monkeypatch.setattr(ids.time, "time_ns", lambda: millis * 1_000_000 + 999_999)

    assert _decode_time(ids.ulid()) == millis


def test_ids_sort_by_creation_time_across_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = itertools.count(1_732_000_000_000)
    monkeypatch.setattr(ids.time, "time_ns", lambda: next(clock) * 1_000_000)

    made = [ids.payment_id() for _ in range(1000)]

    assert sorted(made) == made


def test_ids_sort_across_a_change_in_the_leading_character(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 2**45 ms is where the first character of the time part moves from '0' to '1'.
    instants = iter([2**45 - 1, 2**45])
    monkeypatch.setattr(ids.time, "time_ns", lambda: next(instants) * 1_000_000)

    earlier, later = ids.event_id(), ids.event_id()

    assert earlier < later


def test_ids_from_the_real_clock_sort_after_a_millisecond_passes() -> None:
    earlier = ids.user_id()
    time_part = earlier[4:14]
    later = ids.user_id()
    while later[4:14] == time_part:  # wait (without asserting how long) for the next ms
        later = ids.user_id()

    assert earlier < later


def test_sha256_hex_matches_the_standard_test_vector() -> None:
    assert sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_sha256_hex_of_non_ascii_text_hashes_its_utf8_bytes() -> None:
    assert sha256_hex("결제") == "8d4f3299dd01d1b16e676006e1b945bec62cf09d40ed15d77269e15ba99fb6ff"


def test_sha256_hex_is_64_lowercase_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", sha256_hex("sk_anything"))


@pytest.mark.parametrize("prefix", ["sk", "whsec"])
def test_random_secret_has_its_prefix_and_256_bits(prefix: str) -> None:
    secret = random_secret(prefix)

    assert secret.startswith(prefix + "_")
    body = secret[len(prefix) + 1 :]
    assert re.fullmatch(r"[A-Za-z0-9_\-]+", body)
    assert len(body) >= 43  # 32 bytes in URL-safe base64


def test_random_secrets_are_unique() -> None:
    secrets = {random_secret("sk") for _ in range(2000)}

    assert len(secrets) == 2000


def _ulid_digits(value: int) -> str:
    """A 128-bit value as a ULID's 26 Crockford digits, most significant first."""
    return "".join(CROCKFORD[(value >> (5 * place)) & 31] for place in reversed(range(26)))


def test_ulid_is_the_time_and_the_random_bits_in_crockford_digits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for millis, random_part in [(0, 0), (2**48 - 1, 2**80 - 1), (1_732_000_000_123, 0xA5 << 72)]:
        monkeypatch.setattr(ids.time, "time_ns", lambda millis=millis: millis * 1_000_000)
        monkeypatch.setattr(ids.os, "urandom", lambda n, r=random_part: r.to_bytes(n, "big"))
        assert ids.ulid() == _ulid_digits(millis << 80 | random_part)


def test_request_ids_are_unique_ulids_in_creation_order(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = itertools.count(1_732_000_000_000)
    monkeypatch.setattr(ids.time, "time_ns", lambda: next(clock) * 1_000_000)

    made = [ids.request_id() for _ in range(2000)]

    assert all(re.fullmatch(rf"[{CROCKFORD}]{{26}}", value) for value in made)
    assert sorted(made) == made
    assert len(set(made)) == len(made)


def test_a_forked_process_draws_other_request_ids() -> None:
    """The generator is seeded again in a child: a fork must not repeat its parent's ids."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next random part, then out without pytest's teardown
        os.write(writer, ids.request_id()[10:].encode())
        os._exit(0)
    os.close(writer)
    try:
        theirs = os.read(reader, 64).decode()
    finally:
        os.close(reader)
        os.waitpid(child, 0)
    assert theirs
    assert theirs != ids.request_id()[10:]
