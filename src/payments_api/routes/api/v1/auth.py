"""/api/v1/auth"""

from __future__ import annotations

from fastapi import APIRouter

from payments_api.controllers import auth as controller
from payments_api.middleware.auth import ServicesDep
from payments_api.schemas.errors import JSON_BODY, error_responses
from payments_api.schemas.users import TokenEnvelope, TokenRequest
from payments_api.services.auth import InvalidCredentials, UserInactive

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=TokenEnvelope,
    responses=error_responses(*JSON_BODY, InvalidCredentials, UserInactive),
)
async def issue_token(body: TokenRequest, services: ServicesDep) -> TokenEnvelope:
    return await controller.issue_token(services, body)
