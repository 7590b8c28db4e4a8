"""/api/v1/merchants/…/api-keys: a merchant's own keys, and an admin's recovery key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from payments_api.controllers import api_keys as controller
from payments_api.errors import (
    ConcurrentUpdate,
    ForbiddenError,
    UnauthorizedError,
    ValidationFailed,
)
from payments_api.middleware.auth import Admin, CurrentMerchant, ServicesDep
from payments_api.schemas.common import Envelope
from payments_api.schemas.errors import JSON_BODY, error_responses
from payments_api.schemas.merchants import (
    ApiKeyCreate,
    ApiKeyCreatedEnvelope,
    ApiKeyListEnvelope,
    ApiKeyRoll,
)
from payments_api.services.api_keys import ApiKeyNotFound, LastApiKey, TooManyApiKeys
from payments_api.services.merchants import MerchantNotFound

router = APIRouter(prefix="/api/v1/merchants", tags=["api keys"])

KeyId = Annotated[str, Path(alias="keyId", max_length=64)]
CreateBody = Annotated[ApiKeyCreate | None, Body()]
RollBody = Annotated[ApiKeyRoll | None, Body()]


@router.get(
    "/me/api-keys",
    response_model=ApiKeyListEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError),
)
async def list_my_api_keys(merchant: CurrentMerchant, services: ServicesDep) -> ApiKeyListEnvelope:
    return await controller.list_keys(services, merchant.id)


@router.post(
    "/me/api-keys",
    status_code=201,
    response_model=ApiKeyCreatedEnvelope,
    responses=error_responses(
        *JSON_BODY, UnauthorizedError, ForbiddenError, TooManyApiKeys, ConcurrentUpdate
    ),
)
async def create_my_api_key(
    merchant: CurrentMerchant, services: ServicesDep, body: CreateBody = None
) -> ApiKeyCreatedEnvelope:
    name = body.name if body else None
    return await controller.create(services, merchant.id, name, actor=merchant.id)


@router.post(
    "/me/api-keys/{keyId}/roll",
    status_code=201,
    response_model=ApiKeyCreatedEnvelope,
    responses=error_responses(
        *JSON_BODY,
        UnauthorizedError,
        ForbiddenError,
        ApiKeyNotFound,
        TooManyApiKeys,
        ConcurrentUpdate,
    ),
)
async def roll_my_api_key(
    key_id: KeyId, merchant: CurrentMerchant, services: ServicesDep, body: RollBody = None
) -> ApiKeyCreatedEnvelope:
    expires_in = (body or ApiKeyRoll()).expires_in_seconds
    return await controller.roll(services, merchant.id, key_id, expires_in)


@router.delete(
    "/me/api-keys/{keyId}",
    response_model=Envelope,
    responses=error_responses(
        UnauthorizedError,
        ForbiddenError,
        ApiKeyNotFound,
        LastApiKey,
        ConcurrentUpdate,
        ValidationFailed,
    ),
)
async def revoke_my_api_key(
    key_id: KeyId, merchant: CurrentMerchant, services: ServicesDep
) -> Envelope:
    return await controller.revoke(services, merchant.id, key_id)


@router.post(
    "/{merchantId}/api-keys",
    status_code=201,
    response_model=ApiKeyCreatedEnvelope,
    responses=error_responses(
        *JSON_BODY,
        UnauthorizedError,
        ForbiddenError,
        MerchantNotFound,
        TooManyApiKeys,
        ConcurrentUpdate,
    ),
)
async def issue_recovery_api_key(
    merchant_id: Annotated[str, Path(alias="merchantId", max_length=64)],
    admin: Admin,
    services: ServicesDep,
    body: CreateBody = None,
) -> ApiKeyCreatedEnvelope:
    name = body.name if body else None
    return await controller.create(services, merchant_id, name, actor=admin.id)
