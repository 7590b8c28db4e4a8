"""/api/v1/payments"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Request, Response

from payments_api.controllers import payments as controller
from payments_api.controllers.cached_read import PAYMENTS_PREFIX, ROUTE_PATH
from payments_api.controllers.history_query import History
from payments_api.controllers.idempotency_keys import (
    InvalidIdempotencyKey,
    MissingIdempotencyKey,
    idempotency_key_parameter,
)
from payments_api.errors import (
    ForbiddenError,
    InvalidCursor,
    UnauthorizedError,
    ValidationFailed,
)
from payments_api.middleware.auth import AnyCaller, CurrentUser, ServicesDep
from payments_api.routes.payment_examples import CREATE_DESCRIPTION
from payments_api.schemas.errors import JSON_BODY, error_responses
from payments_api.schemas.payments import (
    CancelEnvelope,
    CancelRequest,
    CaptureRequest,
    PaymentCreate,
    PaymentEnvelope,
    PaymentListEnvelope,
    PaymentReplayEnvelope,
    RefundEnvelope,
    RefundListEnvelope,
    RefundRequest,
)
from payments_api.services.auth import UserInactive
from payments_api.services.cancellations import (
    CancelGatewayUnavailable,
    CancelNotAllowed,
    CancelNotConfirmed,
    PaymentNotCancellable,
)
from payments_api.services.captures import (
    CaptureExceedsAuthorized,
    CaptureGatewayUnavailable,
    CaptureNotAllowed,
    PaymentNotCapturable,
)
from payments_api.services.daily_limits import DailyLimitExceeded
from payments_api.services.idempotency import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    IdempotencyStoreUnavailable,
)
from payments_api.services.merchants import MerchantNotFound
from payments_api.services.payment_failures import (
    PaymentDeclined,
    PaymentGatewayUnavailable,
    PaymentNotProcessed,
)
from payments_api.services.payment_reads import PaymentNotFound
from payments_api.services.payments import AmountTooLarge, DuplicateOrderId
from payments_api.services.refund_errors import (
    AvailableAmountMismatch,
    PaymentNotRefundable,
    RefundExceedsAvailable,
    RefundGatewayUnavailable,
    RefundNotAllowed,
)

router = APIRouter(prefix=PAYMENTS_PREFIX, tags=["payments"])

PaymentId = Annotated[str, Path(alias="paymentId")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", include_in_schema=False)]
"""Read as is and checked by the controller; declared in the schema by `openapi_extra`."""


@router.post(
    "",
    status_code=201,
    response_model=PaymentReplayEnvelope | PaymentEnvelope,
    description=CREATE_DESCRIPTION,
    responses={
        200: {"model": PaymentReplayEnvelope, "description": "Idempotent replay"},
        202: {"model": PaymentEnvelope, "description": "Outcome unknown yet: poll the payment"},
        **error_responses(
            *JSON_BODY,
            MissingIdempotencyKey,
            InvalidIdempotencyKey,
            UnauthorizedError,
            PaymentDeclined,
            ForbiddenError,
            UserInactive,
            MerchantNotFound,
            PaymentNotFound,
            IdempotencyKeyInUse,
            DuplicateOrderId,
            IdempotencyKeyReused,
            AmountTooLarge,
            DailyLimitExceeded,
            PaymentGatewayUnavailable,
            PaymentNotProcessed,
            IdempotencyStoreUnavailable,
        ),
    },
    openapi_extra={"parameters": [idempotency_key_parameter(required=True)]},
)
async def create_payment(
    body: PaymentCreate,
    user: CurrentUser,
    services: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PaymentReplayEnvelope | PaymentEnvelope:
    return await controller.create(services, user, body, idempotency_key, response)


@router.get(
    "",
    response_model=PaymentListEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError, ValidationFailed, InvalidCursor),
)
async def list_payments(
    user: CurrentUser, services: ServicesDep, query: History
) -> PaymentListEnvelope:
    return await controller.history(services, query, user_id=user.id)


@router.get(
    ROUTE_PATH,
    response_model=PaymentEnvelope,
    responses=error_responses(UnauthorizedError, PaymentNotFound, ValidationFailed),
)
async def get_payment(
    payment_id: PaymentId, caller: AnyCaller, services: ServicesDep, request: Request
) -> Response:
    """A cached read by the payment's own user or merchant is answered before routing, with
    the same bytes, by middleware/payment_read.py; every other read comes here."""
    return await controller.read(services, caller, payment_id, request)


@router.post(
    "/{paymentId}/cancel",
    response_model=CancelEnvelope,
    responses=error_responses(
        *JSON_BODY,
        UnauthorizedError,
        CancelNotAllowed,
        PaymentNotFound,
        PaymentNotCancellable,
        CancelNotConfirmed,
        CancelGatewayUnavailable,
    ),
)
async def cancel_payment(
    payment_id: PaymentId, body: CancelRequest, caller: AnyCaller, services: ServicesDep
) -> CancelEnvelope:
    """A completed payment by its user; an authorized one (a void) by its user, its merchant
    or an admin."""
    return await controller.cancel(services, caller, payment_id, body.reason)


@router.post(
    "/{paymentId}/capture",
    response_model=PaymentEnvelope,
    responses={
        202: {"model": PaymentEnvelope, "description": "Capture not confirmed yet: poll it"},
        **error_responses(
            *JSON_BODY,
            InvalidIdempotencyKey,
            UnauthorizedError,
            CaptureNotAllowed,
            PaymentNotFound,
            PaymentNotCapturable,
            IdempotencyKeyInUse,
            IdempotencyKeyReused,
            CaptureExceedsAuthorized,
            CaptureGatewayUnavailable,
            IdempotencyStoreUnavailable,
        ),
    },
    openapi_extra={"parameters": [idempotency_key_parameter(required=False)]},
)
async def capture_payment(
    payment_id: PaymentId,
    caller: AnyCaller,
    services: ServicesDep,
    response: Response,
    body: Annotated[CaptureRequest | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> PaymentEnvelope:
    """Take all or part of an authorization: by the payment's merchant or an admin. Without a
    body, all of it."""
    amount = body.amount if body is not None else None
    return await controller.capture(services, caller, payment_id, amount, idempotency_key, response)


@router.post(
    "/{paymentId}/refund",
    response_model=RefundEnvelope,
    responses={
        202: {"model": RefundEnvelope, "description": "Outcome unknown yet"},
        **error_responses(
            *JSON_BODY,
            InvalidIdempotencyKey,
            UnauthorizedError,
            RefundNotAllowed,
            PaymentNotFound,
            PaymentNotRefundable,
            AvailableAmountMismatch,
            IdempotencyKeyInUse,
            IdempotencyKeyReused,
            RefundExceedsAvailable,
            RefundGatewayUnavailable,
            IdempotencyStoreUnavailable,
        ),
    },
    openapi_extra={"parameters": [idempotency_key_parameter(required=False)]},
)
async def refund_payment(
    payment_id: PaymentId,
    body: RefundRequest,
    caller: AnyCaller,
    services: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RefundEnvelope:
    return await controller.refund(services, caller, payment_id, body, idempotency_key, response)


@router.get(
    "/{paymentId}/refunds",
    response_model=RefundListEnvelope,
    responses=error_responses(UnauthorizedError, PaymentNotFound, ValidationFailed),
)
async def list_refunds(
    payment_id: PaymentId, caller: AnyCaller, services: ServicesDep
) -> RefundListEnvelope:
    return await controller.list_refunds(services, caller, payment_id)
