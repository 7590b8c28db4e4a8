"""What a failed create answers, first time or replayed: the error that says why the payment
failed, carrying the payment (402 declined, 503 unreachable or never processed)."""

from __future__ import annotations

from payments_api.config.constants import FailureCode
from payments_api.errors import AppError, PaymentRequiredError, ServiceUnavailableError
from payments_api.models.payment import Payment, public_view

GATEWAY_UNAVAILABLE_MESSAGE = "The payment gateway could not be reached; nothing was charged"


class PaymentFailed(AppError):
    """What a failed create answers with, first time or replayed: why, and the payment."""

    body_fields = ("payment",)

    def __init__(self, payment: Payment, *, replayed: bool, message: str | None = None) -> None:
        super().__init__(message=message, extra={"payment": public_view(payment)})
        self.payment = payment
        self.replayed = replayed


class PaymentDeclined(PaymentFailed, PaymentRequiredError):
    code = "PAYMENT_DECLINED"
    message = "The payment was declined"

    def __init__(self, payment: Payment, *, replayed: bool = False) -> None:
        super().__init__(payment, replayed=replayed, message=payment.failure_message)


class PaymentGatewayUnavailable(PaymentFailed, ServiceUnavailableError):
    code = "GATEWAY_UNAVAILABLE"
    message = GATEWAY_UNAVAILABLE_MESSAGE


class PaymentNotProcessed(PaymentFailed, ServiceUnavailableError):
    """The request never finished and the charge was reversed: not a decline."""

    code = "PAYMENT_NOT_PROCESSED"
    message = (
        "The payment was not processed and nothing was charged; retry with a new Idempotency-Key"
    )


def failure_of(payment: Payment, replayed: bool) -> PaymentFailed:
    if payment.failure_code == FailureCode.GATEWAY_UNAVAILABLE:
        return PaymentGatewayUnavailable(payment, replayed=replayed)
    if payment.failure_code == FailureCode.NOT_CHARGED:
        return PaymentNotProcessed(payment, replayed=replayed)
    return PaymentDeclined(payment, replayed=replayed)
