"""What the sandbox gateway holds: one `Charge` per paymentId, and the counts tests read.

A `Charge` is an automatic charge, an authorization (`manual`: the money is held, then
captured once — in part or in full — or voided), a decline or a reversal. `amount` is always
what is charged: for an authorization the amount held until it is captured, then the captured
part, so refunds stay bounded by `amount` whichever way the money was taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from payments_api.utils import ids

ChargeStatus = Literal["approved", "authorized", "declined", "cancelled", "reversed"]


@dataclass
class Charge:
    payment_id: str
    amount: int
    currency: str
    status: ChargeStatus
    transaction_id: str | None
    failure_code: str | None = None
    failure_message: str | None = None
    refunds: dict[str, int] = field(default_factory=dict)
    manual: bool = False
    """Asked for with `capture: false`: authorized now, captured (or voided) later."""
    authorized_amount: int = 0
    captured_amount: int = 0
    capture_id: str | None = None

    @classmethod
    def taken(cls, payment_id: str, amount: int, currency: str, *, manual: bool) -> Charge:
        """An approved charge (all of `amount` taken at once) or, when `manual`, an
        authorization of `amount` with nothing taken yet."""
        return cls(
            payment_id,
            amount,
            currency,
            "authorized" if manual else "approved",
            ids.new_id("gtx"),
            manual=manual,
            authorized_amount=amount,
            captured_amount=0 if manual else amount,
        )

    @classmethod
    def declined(cls, payment_id: str, amount: int, currency: str, *, manual: bool) -> Charge:
        """A charge or authorization the issuer refused: nothing held, nothing taken."""
        return cls(
            payment_id,
            amount,
            currency,
            "declined",
            None,
            "CARD_DECLINED",
            "The card was declined by the issuer",
            manual=manual,
        )

    @property
    def refunded(self) -> int:
        return sum(self.refunds.values())

    @property
    def requested_amount(self) -> int:
        """The amount the charge or authorization request carried, which a repeat of it must
        carry too (only a capture makes `amount` differ from it)."""
        return self.authorized_amount if self.capture_id is not None else self.amount

    def capture(self, capture_id: str, amount: int) -> None:
        """Take `amount` (at most what is authorized) of an authorization; the rest is let go."""
        self.status = "approved"
        self.amount = amount
        self.captured_amount = amount
        self.capture_id = capture_id

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
            "authorizedAmount": self.authorized_amount,
            "capturedAmount": self.captured_amount,
            "captureId": self.capture_id,
        }


@dataclass
class SandboxLedger:
    """What the sandbox has charged. All changes happen without an await in between, so
    concurrent requests on one event loop cannot both charge (or both capture)."""

    charges: dict[str, Charge] = field(default_factory=dict)
    charges_made: int = 0
    """Automatic charges made: money taken at once. Captures are counted apart."""
    authorizations_made: int = 0
    captures_made: int = 0
    charge_attempts: dict[str, int] = field(default_factory=dict)
    """Every charge request per paymentId, authorizations included."""
    refund_requests: int = 0
    cancel_requests: int = 0
    capture_requests: int = 0
    """Every refund, cancel (void included) and capture request that reached the sandbox,
    answered yes or no: how a test tells that the service, not the gateway, refused what the
    payment did not allow."""
