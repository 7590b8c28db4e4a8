"""Bodies of the payment routes."""

from __future__ import annotations

from typing import Annotated, Literal

from iso4217 import Currency as Iso4217
from pydantic import AfterValidator, Field, StrictInt, StringConstraints

from payments_api.config.constants import MAX_MONEY, PaymentMethod, PaymentStatus
from payments_api.schemas.common import ApiDatetime, CamelModel, Envelope, pattern, text

PAYABLE_CURRENCIES = frozenset(
    currency.code for currency in Iso4217 if currency.exponent is not None
)
"""The current ISO 4217 codes (the maintenance agency's List One) that have a minor unit, the
unit every amount is in. Those without one (XAU gold, XDR, XXX "no currency", XTS "testing",
...) cannot carry an amount in minor units, so they are no currency to pay in."""


def _payable_currency(code: str) -> str:
    if code not in PAYABLE_CURRENCIES:
        raise ValueError("must be an active ISO 4217 currency code in capitals, such as KRW or USD")
    return code


Currency = Annotated[
    str,
    AfterValidator(_payable_currency),
    Field(json_schema_extra={"enum": sorted(PAYABLE_CURRENCIES)}),
]
Amount = Annotated[StrictInt, Field(gt=0, le=MAX_MONEY, description="In the currency's minor unit")]
"""Money in a request: a strict integer (no float, string or boolean), positive and bounded.
MAX_PAYMENT_AMOUNT is a service rule below this bound (422 AMOUNT_TOO_LARGE)."""
Reason = Annotated[str, text(500)]
ProductName = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=200,
        pattern=pattern(
            r"^[^\x00-\x1f]*[^\x00-\x20][^\x00-\x1f]*$",
            "must not be blank or contain control characters",
        ),
    ),
]
"""1-200 characters, not blank, and no control character: it is printed on receipts."""


class PaymentCreate(CamelModel):
    amount: Amount
    merchant_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    payment_method: PaymentMethod
    product_name: ProductName
    currency: Currency = "KRW"


class PaymentOut(CamelModel):
    payment_id: str
    user_id: str
    merchant_id: str
    amount: int
    currency: str
    payment_method: PaymentMethod
    product_name: str
    status: PaymentStatus
    transaction_id: str | None
    refunded_amount: int
    failure_code: str | None
    failure_message: str | None
    cancel_reason: str | None
    created_at: ApiDatetime
    updated_at: ApiDatetime
    completed_at: ApiDatetime | None
    cancelled_at: ApiDatetime | None


class PaymentEnvelope(Envelope):
    payment: PaymentOut


class PaymentReplayEnvelope(Envelope):
    """The answer to a repeated Idempotency-Key: the payment's current state."""

    payment: PaymentOut
    message: Literal["Payment already processed"] = "Payment already processed"


class Pagination(CamelModel):
    current_page: int
    total_pages: int
    total_count: int
    has_next_page: bool
    has_prev_page: bool


class PaymentListEnvelope(Envelope):
    payments: list[PaymentOut]
    pagination: Pagination


class CancelRequest(CamelModel):
    reason: Reason


class RefundInfo(CamelModel):
    payment_id: str
    refund_amount: int
    refund_status: Literal["processed"] = "processed"


class CancelEnvelope(Envelope):
    message: str = "Payment cancelled successfully"
    refund_info: RefundInfo


class RefundRequest(CamelModel):
    amount: Amount | None = None
    reason: Reason


class RefundOut(CamelModel):
    refund_id: str
    payment_id: str
    amount: int
    reason: str
    status: Literal["pending", "succeeded", "failed"]
    created_at: ApiDatetime


class RefundEnvelope(Envelope):
    message: str = "Refund processed successfully"
    refund: RefundOut


class RefundListEnvelope(Envelope):
    refunds: list[RefundOut]


class Stats(CamelModel):
    total_transactions: int
    total_amount: int
    last_transaction_at: ApiDatetime | None
    today_spent: int
    daily_limit: int
    remaining_today: int


class StatsEnvelope(Envelope):
    stats: Stats
