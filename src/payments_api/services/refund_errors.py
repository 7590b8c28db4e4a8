"""The refusals of a refund request (services/refunds.py), each with its code and the body
fields the contract names for it; the refund route lists them in its OpenAPI responses."""

from __future__ import annotations

from payments_api.errors import (
    ConflictError,
    ForbiddenError,
    ServiceUnavailableError,
    UnprocessableError,
)


class PaymentNotRefundable(ConflictError):
    code = "PAYMENT_NOT_REFUNDABLE"
    message = "Only a completed or partially refunded payment can be refunded"


class RefundExceedsAvailable(UnprocessableError):
    code = "REFUND_EXCEEDS_AVAILABLE"
    message = "The refund exceeds what is left to refund on this payment"
    body_fields = ("availableAmount",)

    def __init__(self, available_amount: int) -> None:
        super().__init__(extra={"availableAmount": available_amount})
        self.available_amount = available_amount


class RefundNotAllowed(ForbiddenError):
    message = "Only the merchant or an admin can refund a payment"


class RefundGatewayUnavailable(ServiceUnavailableError):
    code = "GATEWAY_UNAVAILABLE"
    message = "The payment gateway could not be reached; nothing was refunded"


class AvailableAmountMismatch(ConflictError):
    """What is left to refund is not the `expectedAvailableAmount` the request was sent with
    (as KakaoPay's `cancel_available_amount`): nothing is refunded, so a blind retry of a refund
    that went through cannot refund twice."""

    code = "AVAILABLE_AMOUNT_MISMATCH"
    message = "What is left to refund on this payment is not the expected available amount"
    body_fields = ("availableAmount",)

    def __init__(self, available_amount: int) -> None:
        super().__init__(extra={"availableAmount": available_amount})
        self.available_amount = available_amount
