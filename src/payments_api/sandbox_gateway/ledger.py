"""What the sandbox gateway holds: one `Charge` per paymentId, and the counts tests read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class Charge:
    payment_id: str
    amount: int
    currency: str
    status: Literal["approved", "declined", "cancelled", "reversed"]
    transaction_id: str | None
    failure_code: str | None = None
    failure_message: str | None = None
    refunds: dict[str, int] = field(default_factory=dict)

    @property
    def refunded(self) -> int:
        return sum(self.refunds.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "paymentId": self.payment_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "transactionId": self.transaction_id,
            "failureCode": self.failure_code,
            "failureMessage": self.failure_message,
            "refundedAmount": self.refunded,
        }


@dataclass
class SandboxLedger:
    """What the sandbox has charged. All changes happen without an await in between, so
    concurrent requests on one event loop cannot both charge."""

    charges: dict[str, Charge] = field(default_factory=dict)
    charges_made: int = 0
    charge_attempts: dict[str, int] = field(default_factory=dict)
    refund_requests: int = 0
    cancel_requests: int = 0
    """Every refund and cancel request that reached the sandbox, answered yes or no: how a
    test tells that the service, not the gateway, refused what the payment did not allow."""
