"""A merchant's order held by one payment: the unique index on (merchantId, merchantOrderId)
covers only payments with `holdsOrder` (set at insert, unset by the update that fails the
payment, models/payment.py `Transition`), so a failed attempt leaves the order free."""

from __future__ import annotations

import re

from pymongo.errors import DuplicateKeyError

ORDER_INDEX = "merchant_order_unique"
"""The unique index on (merchantId, merchantOrderId) over the payments holding their order."""


def is_order_clash(error: DuplicateKeyError) -> bool:
    """Whether ORDER_INDEX refused the write (not the idempotency key's index): by the key
    pattern the server reports, else by the index name in its message (never by a substring
    of the whole message, which also holds the clashing values)."""
    details = error.details or {}
    pattern = details.get("keyPattern") or details.get("keyValue")
    if pattern:
        return "merchantOrderId" in pattern
    named = re.search(r"index: (\S+)", str(error))
    return named is not None and named.group(1) == ORDER_INDEX
