"""/api/v1/payments"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response

from payments_api.controllers import payments as controller
from payments_api.controllers.payments import History
from payments_api.middleware.auth import AnyCaller, CurrentUser, ServicesDep
from payments_api.schemas.common import JSON_BODY, error_responses
from payments_api.schemas.payments import (
    CancelEnvelope,
    CancelRequest,
    PaymentCreate,
    PaymentEnvelope,
    PaymentListEnvelope,
    PaymentReplayEnvelope,
    RefundEnvelope,
    RefundListEnvelope,
    RefundRequest,
)

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])

PaymentId = Annotated[str, Path(alias="paymentId")]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", include_in_schema=False)]
"""Read as is and checked by the controller; declared in the schema by `openapi_extra`."""


@router.post(
    "",
    status_code=201,
    response_model=PaymentReplayEnvelope | PaymentEnvelope,
    responses={
        200: {"model": PaymentReplayEnvelope, "description": "Idempotent replay"},
        202: {"model": PaymentEnvelope, "description": "Outcome unknown yet: poll the payment"},
        **error_responses(*JSON_BODY, 401, 402, 403, 404, 409, 503),
    },
    openapi_extra={"parameters": [controller.idempotency_key_parameter(required=True)]},
)
async def create_payment(
    body: PaymentCreate,
    user: CurrentUser,
    services: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> PaymentReplayEnvelope | PaymentEnvelope:
    return await controller.create(services, user, body, idempotency_key, response)


@router.get("", response_model=PaymentListEnvelope, responses=error_responses(401, 403, 422))
async def list_payments(
    user: CurrentUser, services: ServicesDep, query: History
) -> PaymentListEnvelope:
    return await controller.history(services, query, user_id=user.id)


@router.get(
    "/{paymentId}", response_model=PaymentEnvelope, responses=error_responses(401, 404, 422)
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
    responses=error_responses(*JSON_BODY, 401, 403, 404, 409, 503),
)
async def cancel_payment(
    payment_id: PaymentId, body: CancelRequest, user: CurrentUser, services: ServicesDep
) -> CancelEnvelope:
    return await controller.cancel(services, user, payment_id, body.reason)


@router.post(
    "/{paymentId}/refund",
    response_model=RefundEnvelope,
    responses={
        202: {"model": RefundEnvelope, "description": "Outcome unknown yet"},
        **error_responses(*JSON_BODY, 401, 403, 404, 409, 503),
    },
    openapi_extra={"parameters": [controller.idempotency_key_parameter(required=False)]},
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
    responses=error_responses(401, 404, 422),
)
async def list_refunds(
    payment_id: PaymentId, caller: AnyCaller, services: ServicesDep
) -> RefundListEnvelope:
    return await controller.list_refunds(services, caller, payment_id)
