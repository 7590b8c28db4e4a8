"""The auth dependencies: who the bearer is, and whether that kind of caller may use a route.

`CurrentUser` and `CurrentMerchant` need the matching kind of credential (the other kind is a
403) and read nothing; their `…Document` forms also load the caller's document. `Admin` loads
the user and requires the admin role; `AnyCaller` accepts both kinds.

Each also names the security scheme(s) it accepts, so the OpenAPI description declares them
per route (`userToken`, `merchantKey`); those scheme dependencies read nothing at runtime.
"""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from payments_api.errors import ForbiddenError
from payments_api.models.merchant import Merchant
from payments_api.models.user import User
from payments_api.services.auth import Principal, UserInactive
from payments_api.services.registry import Services


class DocumentedBearer(HTTPBearer):
    """A bearer security scheme for the OpenAPI description only. The credential itself is
    resolved by `get_principal` (or already by the rate limiter), so this does nothing at
    runtime: how auth works does not depend on it."""

    async def __call__(self, request: HTTPConnection) -> None:
        return None


USER_TOKEN = DocumentedBearer(
    scheme_name="userToken",
    bearerFormat="JWT",
    description="A user's access token from `POST /api/v1/auth/token` (a JWT, HS256), as "
    "`Authorization: Bearer <token>`. An admin is a user whose role is `admin`.",
)
MERCHANT_KEY = DocumentedBearer(
    scheme_name="merchantKey",
    bearerFormat="sk_…",
    description="A merchant's secret API key, shown once at creation, as "
    "`Authorization: Bearer sk_…`.",
)
UserTokenScheme = Annotated[None, Security(USER_TOKEN)]
MerchantKeyScheme = Annotated[None, Security(MERCHANT_KEY)]


async def get_services(request: Request) -> Services:
    """async on purpose: FastAPI runs a plain `def` dependency on the thread pool, a hop that
    cost more than the rest of a cached read."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_principal(request: Request, services: ServicesDep) -> Principal:
    """The caller, as the rate limiter already resolved it, else from the header now."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        principal = await services.auth.resolve(request.headers.get("authorization"))
        request.state.principal = principal
    key = "userId" if principal.kind == "user" else "merchantId"
    setattr(request.state, key, principal.id)
    structlog.contextvars.bind_contextvars(**{key: principal.id})
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_user(principal: PrincipalDep, _scheme: UserTokenScheme) -> Principal:
    if principal.kind != "user":
        raise ForbiddenError(message="This route is for users")
    return principal


async def require_user_document(
    principal: PrincipalDep, services: ServicesDep, _scheme: UserTokenScheme
) -> User:
    if principal.kind != "user":
        raise ForbiddenError(message="This route is for users")
    user = await services.users.get_authenticated(principal.id)
    if not user.is_active:
        raise UserInactive()
    return user


async def require_merchant(principal: PrincipalDep, _scheme: MerchantKeyScheme) -> Principal:
    if principal.kind != "merchant":
        raise ForbiddenError(message="This route is for merchants")
    return principal


async def require_merchant_document(
    principal: PrincipalDep, services: ServicesDep, _scheme: MerchantKeyScheme
) -> Merchant:
    if principal.kind != "merchant":
        raise ForbiddenError(message="This route is for merchants")
    return await services.merchants.get_authenticated(principal.id)


async def require_admin(
    principal: PrincipalDep, services: ServicesDep, _scheme: UserTokenScheme
) -> User:
    if principal.kind != "user":
        raise ForbiddenError(message="This route is for admins")
    user = await services.users.get_authenticated(principal.id)
    if not user.is_active_admin:
        raise ForbiddenError(message="This route is for admins")
    return user


CurrentUser = Annotated[Principal, Depends(require_user)]
"""A user, by token only: no database read (the hot path)."""
CurrentUserDocument = Annotated[User, Depends(require_user_document)]
"""A user, loaded: for routes that need the profile, role or active flag."""
CurrentMerchant = Annotated[Principal, Depends(require_merchant)]
"""A merchant, by its key only: no database read."""
CurrentMerchantDocument = Annotated[Merchant, Depends(require_merchant_document)]
"""A merchant, loaded now: for routes that show or change it."""
Admin = Annotated[User, Depends(require_admin)]


async def any_caller(
    principal: PrincipalDep, _user: UserTokenScheme, _merchant: MerchantKeyScheme
) -> Principal:
    return principal


AnyCaller = Annotated[Principal, Depends(any_caller)]
"""A user (or admin) or a merchant: either scheme."""
