"""/api/v1/merchants"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from payments_api.controllers import merchants as controller
from payments_api.controllers import payments as payments_controller
from payments_api.controllers.history_query import History
from payments_api.errors import (
    ConcurrentUpdate,
    ForbiddenError,
    InvalidCursor,
    UnauthorizedError,
    ValidationFailed,
)
from payments_api.middleware.auth import (
    Admin,
    AnyCaller,
    CurrentMerchant,
    CurrentMerchantDocument,
    ServicesDep,
)
from payments_api.schemas.errors import JSON_BODY, error_responses
from payments_api.schemas.merchants import (
    MerchantCreate,
    MerchantCreatedEnvelope,
    MerchantEnvelope,
    MerchantPublicEnvelope,
    MerchantUpdate,
    MerchantUpdateOwn,
    WebhookSecretEnvelope,
)
from payments_api.schemas.payments import PaymentListEnvelope
from payments_api.services.merchants import MerchantNotFound

router = APIRouter(prefix="/api/v1/merchants", tags=["merchants"])


@router.post(
    "",
    status_code=201,
    response_model=MerchantCreatedEnvelope,
    responses=error_responses(*JSON_BODY, UnauthorizedError, ForbiddenError),
)
async def create_merchant(
    body: MerchantCreate, admin: Admin, services: ServicesDep
) -> MerchantCreatedEnvelope:
    return await controller.create(services, body, admin)


@router.get(
    "/me",
    response_model=MerchantEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError),
)
async def get_my_merchant(merchant: CurrentMerchantDocument) -> MerchantEnvelope:
    return controller.me(merchant)


@router.patch(
    "/me",
    response_model=MerchantEnvelope,
    responses=error_responses(*JSON_BODY, UnauthorizedError, ForbiddenError),
)
async def update_my_merchant(
    body: MerchantUpdateOwn, merchant: CurrentMerchant, services: ServicesDep
) -> MerchantEnvelope:
    return await controller.update(services, merchant.id, body, actor=merchant.id)


@router.post(
    "/me/webhook-secret",
    response_model=WebhookSecretEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError, ConcurrentUpdate),
)
async def rotate_my_webhook_secret(
    merchant: CurrentMerchant, services: ServicesDep
) -> WebhookSecretEnvelope:
    return await controller.rotate_webhook_secret(services, merchant.id)


@router.get(
    "/{merchantId}",
    response_model=MerchantPublicEnvelope,
    responses=error_responses(UnauthorizedError, MerchantNotFound, ValidationFailed),
)
async def get_merchant(
    merchant_id: Annotated[str, Path(alias="merchantId")],
    _caller: AnyCaller,
    services: ServicesDep,
) -> MerchantPublicEnvelope:
    return await controller.public(services, merchant_id)


@router.get(
    "/me/payments",
    response_model=PaymentListEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError, ValidationFailed, InvalidCursor),
)
async def list_my_payments(
    merchant: CurrentMerchant, services: ServicesDep, query: History
) -> PaymentListEnvelope:
    return await payments_controller.history(services, query, merchant_id=merchant.id)


@router.patch(
    "/{merchantId}",
    response_model=MerchantEnvelope,
    responses=error_responses(*JSON_BODY, UnauthorizedError, ForbiddenError, MerchantNotFound),
)
async def update_merchant(
    merchant_id: Annotated[str, Path(alias="merchantId", max_length=64)],
    body: MerchantUpdate,
    admin: Admin,
    services: ServicesDep,
) -> MerchantEnvelope:
    return await controller.update(services, merchant_id, body, actor=admin.id)
