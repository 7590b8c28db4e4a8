"""/api/v1/users"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from payments_api.controllers import payments as payments_controller
from payments_api.controllers import users as controller
from payments_api.errors import ForbiddenError, UnauthorizedError
from payments_api.middleware.auth import Admin, CurrentUser, CurrentUserDocument, ServicesDep
from payments_api.schemas.errors import JSON_BODY, error_responses
from payments_api.schemas.payments import StatsEnvelope
from payments_api.schemas.users import UserCreate, UserEnvelope, UserUpdate
from payments_api.services.auth import UserInactive
from payments_api.services.users import (
    EmailAlreadyRegistered,
    LastAdmin,
    PhoneAlreadyRegistered,
    UserNotFound,
)

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.post(
    "",
    status_code=201,
    response_model=UserEnvelope,
    responses=error_responses(*JSON_BODY, EmailAlreadyRegistered, PhoneAlreadyRegistered),
)
async def register_user(body: UserCreate, services: ServicesDep) -> UserEnvelope:
    return await controller.register(services, body)


@router.get(
    "/me",
    response_model=UserEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError, UserInactive),
)
async def get_me(user: CurrentUserDocument) -> UserEnvelope:
    return controller.me(user)


@router.patch(
    "/{userId}",
    response_model=UserEnvelope,
    responses=error_responses(
        *JSON_BODY, UnauthorizedError, ForbiddenError, UserNotFound, LastAdmin
    ),
)
async def update_user(
    user_id: Annotated[str, Path(alias="userId")],
    body: UserUpdate,
    admin: Admin,
    services: ServicesDep,
) -> UserEnvelope:
    return await controller.update(services, user_id, body, admin)


@router.get(
    "/me/stats",
    response_model=StatsEnvelope,
    responses=error_responses(UnauthorizedError, ForbiddenError),
)
async def get_my_stats(user: CurrentUser, services: ServicesDep) -> StatsEnvelope:
    return await payments_controller.stats(services, user)
