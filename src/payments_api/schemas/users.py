"""Bodies of the users and auth routes."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AfterValidator,
    EmailStr,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from payments_api.config.constants import MAX_MONEY, Role
from payments_api.models.base import UtcDatetime
from payments_api.models.user import User
from payments_api.schemas.common import CamelModel, Envelope, pattern, text

PHONE_PATTERN = pattern(
    r"^\+?[0-9][0-9 \-]{6,18}[0-9]$", "must be a phone number: 8-20 digits, spaces or dashes"
)


def _lower(value: str) -> str:
    return value.lower()


Email = Annotated[EmailStr, AfterValidator(_lower)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
PhoneNumber = Annotated[str, StringConstraints(pattern=PHONE_PATTERN)]
PersonName = Annotated[str, text(100)]


class UserCreate(CamelModel):
    email: Email
    password: Password
    name: PersonName
    phone_number: PhoneNumber | None = None


class UserUpdate(CamelModel):
    """Admin changes; fields left out stay as they are."""

    daily_limit: StrictInt | None = Field(default=None, ge=0, le=MAX_MONEY)
    is_active: StrictBool | None = None
    role: Role | None = None


class UserOut(CamelModel):
    user_id: str
    email: str
    name: str
    phone_number: str | None
    role: Role
    daily_limit: int
    is_active: bool
    created_at: UtcDatetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            user_id=user.id,
            email=user.email,
            name=user.name,
            phone_number=user.phone_number,
            role=user.role,
            daily_limit=user.daily_limit,
            is_active=user.is_active,
            created_at=user.created_at,
        )


class UserEnvelope(Envelope):
    user: UserOut


class TokenRequest(CamelModel):
    email: Annotated[str, text(320)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class TokenEnvelope(Envelope):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the token type name
    expires_in: int
