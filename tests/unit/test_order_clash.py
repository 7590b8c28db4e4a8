"""Which unique index refused a payment's insert: the order's (409 DUPLICATE_ORDER_ID) or the
idempotency key's (a replay), by the key pattern a server reports, else by the index name in
its message — never by the values in it, which the client chose."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError

from payments_api.models.payment_orders import is_order_clash

ORDER_MESSAGE = (
    "E11000 duplicate key error collection: payments.payments index: merchant_order_unique "
    'dup key: { merchantId: "mch_1", merchantOrderId: "user_idempotency_key_unique" }'
)
KEY_MESSAGE = (
    "E11000 duplicate key error collection: payments.payments index: user_idempotency_key_unique "
    'dup key: { userId: "usr_1", idempotencyKey: "merchant_order_unique" }'
)


@pytest.mark.parametrize(
    ("message", "details", "order"),
    [
        ("E11000", {"keyPattern": {"merchantId": 1, "merchantOrderId": 1}}, True),
        ("E11000", {"keyPattern": {"userId": 1, "idempotencyKey": 1}}, False),
        ("E11000", {"keyValue": {"merchantId": "m", "merchantOrderId": "o"}}, True),
        (ORDER_MESSAGE, {}, True),
        (KEY_MESSAGE, {}, False),
        ("UNIQUE constraint failed: index 'idx_payments_merchantId_merchantOrderId'", {}, False),
    ],
    ids=["order-pattern", "key-pattern", "order-values", "order-name", "key-name", "unnamed"],
)
def test_the_clashing_index_is_told_by_its_pattern_or_name(
    message: str, details: dict[str, Any], order: bool
) -> None:
    error = DuplicateKeyError(message, 11000, {"errmsg": message, **details})

    assert is_order_clash(error) is order
