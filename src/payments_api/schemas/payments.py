"""Bodies of the payment routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from iso4217 import Currency as Iso4217
from pydantic import (
    AfterValidator,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from payments_api.config.constants import MAX_MONEY, CaptureMethod, PaymentMethod, PaymentStatus
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


MERCHANT_ORDER_ID_PATTERN = pattern(
    r"^[\x20-\x7e]{1,64}$", "must be 1-64 printable ASCII characters"
)
MerchantOrderId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=MERCHANT_ORDER_ID_PATTERN),
    Field(
        description="The merchant's own order reference: unique among its payments that "
        "have not failed"
    ),
]

MAX_METADATA_KEYS = 20
METADATA_RULE = (
    f"must be an object of at most {MAX_METADATA_KEYS} keys of 1-40 characters (no NUL "
    "character), each value a string of at most 500 characters"
)
METADATA_KEY_PATTERN = r"^[^\x00]{1,40}$"
"""A key MongoDB can store as a field name as given: no NUL, which BSON cannot hold in one."""


def _metadata_as_one_field(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Whatever is wrong inside `metadata` (a key, a value, their number) is reported as one
    error on `metadata` itself, with the whole rule, not one per inner path."""
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(METADATA_RULE) from None


def _metadata_schema(schema: dict[str, Any]) -> None:
    """Pydantic describes a key pattern as `patternProperties`, which leaves every key that
    does not match it unconstrained; the rule is on every key (`propertyNames`) and every value
    (`additionalProperties`)."""
    patterns = schema.pop("patternProperties", {})
    for key_pattern, value_schema in patterns.items():
        schema.setdefault("propertyNames", {})["pattern"] = key_pattern
        schema["additionalProperties"] = value_schema


Metadata = Annotated[
    dict[
        Annotated[
            str, StringConstraints(min_length=1, max_length=40, pattern=METADATA_KEY_PATTERN)
        ],
        Annotated[str, StringConstraints(max_length=500)],
    ],
    Field(max_length=MAX_METADATA_KEYS, json_schema_extra=_metadata_schema),
    WrapValidator(_metadata_as_one_field),
]
"""The client's own key-value pairs: stored and returned as given, never used for a decision."""


class PaymentCreate(CamelModel):
    amount: Amount
    merchant_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    payment_method: PaymentMethod
    product_name: ProductName
    currency: Currency = "KRW"
    merchant_order_id: MerchantOrderId | None = None
    metadata: Metadata = Field(default_factory=dict)
    capture_method: CaptureMethod = Field(
        default=CaptureMethod.AUTOMATIC,
        description="`automatic`: charged at once; `manual`: authorized now, captured later",
    )


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
    merchant_order_id: str | None
    metadata: dict[str, str]
    capture_method: CaptureMethod
    captured_amount: int = Field(
        description="What was charged: `amount` once an automatic payment completed, the "
        "captured part of a manual one, 0 before"
    )
    authorization_expires_at: ApiDatetime | None = Field(
        description="When an uncaptured authorization is voided (manual capture only)"
    )


class PaymentEnvelope(Envelope):
    payment: PaymentOut


class PaymentReplayEnvelope(Envelope):
    """The answer to a repeated Idempotency-Key: the payment's current state."""

    payment: PaymentOut
    message: Literal["Payment already processed"] = "Payment already processed"


class Pagination(CamelModel):
    """A page by number (no cursor in the query)."""

    current_page: int
    total_pages: int
    total_count: int
    has_next_page: bool
    has_prev_page: bool
    has_more: bool
    next_cursor: str | None = Field(
        description="The page's last paymentId when older payments match, else null"
    )


class CursorPagination(CamelModel):
    """A page after (`startingAfter`) or before (`endingBefore`) a payment."""

    has_more: bool = Field(
        description="More payments match in the direction of the cursor: older ones after "
        "`startingAfter`, newer ones before `endingBefore`"
    )
    next_cursor: str | None = Field(
        description="The page's last paymentId when older payments match, else null"
    )
    prev_cursor: str | None = Field(
        description="The page's first paymentId when newer payments match, else null"
    )


class PaymentListEnvelope(Envelope):
    payments: list[PaymentOut]
    pagination: Pagination | CursorPagination


class CancelRequest(CamelModel):
    reason: Reason


class CaptureRequest(CamelModel):
    amount: Amount | None = Field(
        default=None, description="What to take of the authorization; all of it when absent"
    )


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
    metadata: Metadata = Field(default_factory=dict)
    expected_available_amount: Annotated[StrictInt, Field(ge=0, le=MAX_MONEY)] | None = Field(
        default=None,
        description="What the caller expects is left to refund (as KakaoPay's "
        "`cancel_available_amount`), in the currency's minor unit: when it is not exactly "
        "that, nothing is refunded (409 AVAILABLE_AMOUNT_MISMATCH with `availableAmount`), "
        "so a retry without an Idempotency-Key cannot refund twice",
    )


class RefundOut(CamelModel):
    refund_id: str
    payment_id: str
    amount: int
    reason: str
    status: Literal["pending", "succeeded", "failed"]
    created_at: ApiDatetime
    metadata: dict[str, str]


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
