"""The indexes the models rely on, made at start-up (`Database.connect`), and those earlier
versions made that are dropped there."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

NEWEST_FIRST = [("createdAt", DESCENDING), ("_id", DESCENDING)]


def _history_indexes(owner: str, name: str) -> list[IndexModel]:
    return [
        IndexModel([(owner, ASCENDING), *NEWEST_FIRST], name=f"{name}_payments_newest"),
        IndexModel(
            [(owner, ASCENDING), ("status", ASCENDING), *NEWEST_FIRST],
            name=f"{name}_payments_by_status",
        ),
        IndexModel(
            [(owner, ASCENDING), ("merchantOrderId", ASCENDING), *NEWEST_FIRST],
            name=f"{name}_payments_by_order",
        ),
    ]


INDEXES: dict[str, list[IndexModel]] = {
    "users": [
        IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
        # Sparse: users without a phone number store no field and never collide.
        IndexModel([("phoneNumber", ASCENDING)], unique=True, sparse=True, name="phone_unique"),
        IndexModel([("phoneKey", ASCENDING)], unique=True, sparse=True, name="phone_key_unique"),
    ],
    "api_keys": [
        IndexModel([("keyHash", ASCENDING)], unique=True, name="key_hash_unique"),
    ],
    "payments": [
        # The last line of defence for idempotency when Redis forgets a key.
        IndexModel(
            [("userId", ASCENDING), ("idempotencyKey", ASCENDING)],
            unique=True,
            name="user_idempotency_key_unique",
        ),
        # One merchant's order is held by at most one payment: those that have not failed
        # carry `holdsOrder` (a failure unsets it in the update that records it).
        IndexModel(
            [("merchantId", ASCENDING), ("merchantOrderId", ASCENDING)],
            unique=True,
            partialFilterExpression={"holdsOrder": True},
            name="merchant_order_unique",
        ),
        # The histories (models/payment_pages.py), newest first by (createdAt, _id): the
        # equality filters first, then the sort keys, so every page and cursor is read in
        # order from one index, never sorted in memory. A merchantOrderId matches a few
        # payments, so a status filter beside it is checked on those.
        *_history_indexes("userId", "user"),
        *_history_indexes("merchantId", "merchant"),
        IndexModel([("status", ASCENDING), ("updatedAt", ASCENDING)], name="status_age"),
        # Only failures no gateway "no" stands behind carry it, while they are watched.
        IndexModel([("nextRecheckAt", ASCENDING)], sparse=True, name="late_charge_recheck"),
    ],
    "transactions": [
        IndexModel(
            [("type", ASCENDING), ("reference", ASCENDING)], unique=True, name="movement_unique"
        ),
        IndexModel([("paymentId", ASCENDING), ("createdAt", ASCENDING)], name="payment_ledger"),
    ],
    "refunds": [
        IndexModel([("paymentId", ASCENDING), ("createdAt", ASCENDING)], name="payment_refunds"),
        IndexModel(
            [("idempotencyScope", ASCENDING)],
            unique=True,
            sparse=True,
            name="refund_idempotency_unique",
        ),
    ],
    "events": [
        IndexModel([("dedupeKey", ASCENDING)], unique=True, name="event_dedupe_unique"),
        IndexModel([("paymentId", ASCENDING), ("createdAt", ASCENDING)], name="payment_events"),
        # The dispatcher's due events and the reconciler's stale drafts.
        IndexModel([("status", ASCENDING), ("nextAttemptAt", ASCENDING)], name="event_due"),
        # A merchant's own events, newest first (GET /merchants/me/events), with or without a
        # paymentId or type filter: each an equality prefix, so no query sorts in memory.
        IndexModel(
            [("merchantId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
            name="merchant_events",
        ),
        IndexModel(
            [
                ("merchantId", ASCENDING),
                ("paymentId", ASCENDING),
                ("createdAt", DESCENDING),
                ("_id", DESCENDING),
            ],
            name="merchant_payment_events",
        ),
        IndexModel(
            [
                ("merchantId", ASCENDING),
                ("type", ASCENDING),
                ("createdAt", DESCENDING),
                ("_id", DESCENDING),
            ],
            name="merchant_events_by_type",
        ),
    ],
}


RETIRED_INDEXES: dict[str, list[str]] = {
    "payments": ["user_history", "merchant_history"],
    # One key per merchant, on the merchant (v1.0): its unique nulls would refuse a second
    # merchant of today's shape, so it must go before anything is written.
    "merchants": ["api_key_hash_unique"],
}
"""Indexes earlier versions made that INDEXES replaced: dropped at start-up where present."""
