"""Enums and fixed numbers shared across layers."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class PaymentMethod(StrEnum):
    CARD = "card"
    KAKAOPAY_MONEY = "kakaopay_money"
    BANK_TRANSFER = "bank_transfer"


class CaptureMethod(StrEnum):
    AUTOMATIC = "automatic"
    """Charged at once, at creation."""
    MANUAL = "manual"
    """Authorized at creation, captured (or voided) later."""


class EventType(StrEnum):
    PAYMENT_AUTHORIZED = "payment.authorized"
    PAYMENT_COMPLETED = "payment.completed"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_CANCELLED = "payment.cancelled"
    PAYMENT_REFUNDED = "payment.refunded"


class FailureCode(StrEnum):
    """The `failureCode`s the service decides itself (a gateway's own codes pass through)."""

    GATEWAY_UNAVAILABLE = "GATEWAY_UNAVAILABLE"
    """No connection to the gateway could be made: nothing was sent, nothing charged."""
    NOT_CHARGED = "NOT_CHARGED"
    """The answer was lost and the gateway confirmed a reversal: nothing was charged."""


UNANSWERED_FAILURES = frozenset({FailureCode.GATEWAY_UNAVAILABLE, FailureCode.NOT_CHARGED})
"""Failures that no "no" of the gateway stands behind: a charge may land anyway, so such a
payment is re-checked at the gateway for a while (and a charge found is refunded)."""

AUTHORIZATION_EXPIRED = "authorization_expired"
"""The `cancelReason` of an authorization the worker voided because nobody captured it in time."""

MAX_MONEY = 10**15
"""The largest sum of money any request may carry (minor units): a schema bound, so no amount or
limit can reach MongoDB's 8-byte integer limit (nor be summed past it). Business ceilings such
as MAX_PAYMENT_AMOUNT sit below it."""
MAX_QUERY_INTEGER = 2**31 - 1
"""The schema bound of every integer query parameter (the int32 range every client can hold):
even the deepest page's skip, (page - 1) * 100, stays far inside MongoDB's 8-byte integers."""

ADMIN_EXIT_LEASE_SECONDS = 10
"""How long a demotion or deactivation in flight keeps its admin from counting as the one left
behind (models/user.py); a record left by a process that died stops counting after it."""

API_KEY_PREFIX = "sk"
WEBHOOK_SECRET_PREFIX = "whsec"  # noqa: S105 - a prefix, not a secret
REQUEST_ID_MAX_LENGTH = 128
SERVER_WAIT_SECONDS = 10.0
CheckResult = Literal["ok", "error", "timeout"]
"""What one dependency's readiness check found (services/readiness.py)."""
READINESS_TIMEOUT_SECONDS = 1.0
"""The longest one dependency's check (GET /ready, and the readiness gauges of /metrics) waits."""
GAUGE_REFRESH_TIMEOUT_SECONDS = 1.0
"""The longest /metrics waits for the database's figures (services/operational_gauges.py): the
queries run beside the readiness checks, so a scrape answers within about a second, well
inside Prometheus's default 10 s scrape timeout, whatever the dependencies do."""
GRACEFUL_SHUTDOWN_SECONDS = 30

HEADER_WHITESPACE = b" \t"
"""The optional whitespace around a header field value, which is not part of it (RFC 9110)."""
MAX_HEADER_COUNT = 100
MAX_HEADER_BYTES = 16 * 1024
"""The contract's bounds on a request's header fields: how many, and their bytes in all."""
