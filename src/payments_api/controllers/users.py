"""Users: turn service results into the contract's envelopes."""

from __future__ import annotations

from payments_api.models.user import User
from payments_api.schemas.users import UserCreate, UserEnvelope, UserOut, UserUpdate
from payments_api.services.registry import Services


async def register(services: Services, body: UserCreate) -> UserEnvelope:
    user = await services.users.register(
        email=body.email,
        password=body.password,
        name=body.name,
        phone_number=body.phone_number,
    )
    return UserEnvelope(user=UserOut.of(user))


def me(user: User) -> UserEnvelope:
    return UserEnvelope(user=UserOut.of(user))


async def update(services: Services, user_id: str, body: UserUpdate, admin: User) -> UserEnvelope:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    user = await services.users.update(user_id, changes, admin_id=admin.id)
    return UserEnvelope(user=UserOut.of(user))
