"""Enums and fixed numbers shared across layers."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class PaymentMethod(StrEnum):
    CARD = "card"
    KAKAOPAY_MONEY = "kakaopay_money"
    BANK_TRANSFER = "bank_transfer"


class EventType(StrEnum):
    PAYMENT_COMPLETED = "payment.completed"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_CANCELLED = "payment.cancelled"
    PAYMENT_REFUNDED = "payment.refunded"


API_KEY_PREFIX = "sk"
WEBHOOK_SECRET_PREFIX = "whsec"  # noqa: S105 - a prefix, not a secret
REQUEST_ID_MAX_LENGTH = 128
SERVER_WAIT_SECONDS = 10.0
READINESS_TIMEOUT_SECONDS = 1.0
GRACEFUL_SHUTDOWN_SECONDS = 30

HEADER_WHITESPACE = b" \t"
"""The optional whitespace around a header field value, which is not part of it (RFC 9110)."""
MAX_HEADER_COUNT = 100
MAX_HEADER_BYTES = 16 * 1024
"""The contract's bounds on a request's header fields: how many, and their bytes in all."""
