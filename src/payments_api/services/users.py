"""Registration, profile and admin changes of users."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from payments_api.config.constants import ADMIN_EXIT_LEASE_SECONDS, Role
from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.errors import ConflictError, NotFoundError, UnauthorizedError
from payments_api.models import user as user_store
from payments_api.models.user import User
from payments_api.services.credentials import Credentials
from payments_api.services.passwords import hash_password
from payments_api.services.stats import StatsService
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from payments_api.utils.logger import log_business_event


class EmailAlreadyRegistered(ConflictError):
    code = "EMAIL_ALREADY_REGISTERED"
    message = "This email is already registered"


class PhoneAlreadyRegistered(ConflictError):
    code = "PHONE_ALREADY_REGISTERED"
    message = "This phone number is already registered"


class LastAdmin(ConflictError):
    code = "LAST_ADMIN"
    message = "This change would leave no active admin"


class UserNotFound(NotFoundError):
    code = "USER_NOT_FOUND"
    message = "User not found"


def _conflict_for(exc: DuplicateKeyError) -> ConflictError:
    """The conflict named by the unique index that refused the insert: by its key pattern
    (MongoDB 4.2+ and the stand-in report it), else by the index name in the message. Never by
    a substring of the whole message, which also holds the clashing value (an email such as
    `phone@example.com`)."""
    details = exc.details or {}
    fields = set(details.get("keyPattern") or details.get("keyValue") or {})
    if not fields:
        index = re.search(r"index: (\S+)", str(exc))
        phone_indexes = ("phone_unique", "phone_key_unique")
        fields = {"phoneNumber"} if index and index.group(1) in phone_indexes else set()
    if fields & {"phoneNumber", "phoneKey"}:
        return PhoneAlreadyRegistered()
    return EmailAlreadyRegistered()


def _may_take_an_admin_away(changes: dict[str, Any]) -> bool:
    return changes.get("role") == Role.USER or changes.get("is_active") is False


def phone_key(phone_number: str) -> str:
    """`+82 10-1234-5678` and `+821012345678` are one number: keep the digits and a leading +."""
    digits = "".join(char for char in phone_number if char.isdigit())
    return f"+{digits}" if phone_number.startswith("+") else digits


class UserService:
    def __init__(
        self, settings: Settings, db: Database, stats: StatsService, credentials: Credentials
    ) -> None:
        self.settings = settings
        self.db = db
        self.stats = stats
        self.credentials = credentials

    async def register(
        self,
        *,
        email: str,
        password: str,
        name: str,
        phone_number: str | None,
        role: Role = Role.USER,
    ) -> User:
        if await user_store.exists_with(self.db, "email", email):
            raise EmailAlreadyRegistered()
        key = phone_key(phone_number) if phone_number else None
        if key and await user_store.exists_with(self.db, "phoneKey", key):
            raise PhoneAlreadyRegistered()
        now = utcnow()
        user = User(
            id=ids.user_id(),
            email=email,
            password_hash=await hash_password(password),
            name=name,
            phone_number=phone_number,
            phone_key=key,
            role=role,
            daily_limit=self.settings.default_daily_limit,
            created_at=now,
            updated_at=now,
        )
        try:
            await user_store.insert(self.db, user)
        except DuplicateKeyError as exc:
            # Two registrations raced past the checks above; the unique index decided.
            raise _conflict_for(exc) from exc
        log_business_event("user registered", userId=user.id, role=user.role)
        return user

    async def get(self, user_id: str) -> User:
        user = await user_store.find_by_id(self.db, user_id)
        if user is None:
            raise UserNotFound()
        return user

    async def get_authenticated(self, user_id: str) -> User:
        """The user behind a valid token; a token for a user that does not exist is no
        credential (`UnauthorizedError`)."""
        user = await user_store.find_by_id(self.db, user_id)
        if user is None:
            raise UnauthorizedError(message="Invalid or expired token")
        return user

    async def update(self, user_id: str, changes: dict[str, Any], admin_id: str) -> User:
        stored = {
            {"daily_limit": "dailyLimit", "is_active": "isActive", "role": "role"}[key]: value
            for key, value in changes.items()
        }
        stored["updatedAt"] = utcnow()
        if _may_take_an_admin_away(changes):
            user = await self._update_keeping_an_admin(user_id, stored)
        else:
            found = await user_store.update(self.db, user_id, stored)
            if found is None:
                raise UserNotFound()
            user = found
        await self.stats.invalidate(user_id)  # the cached stats carry the daily limit
        self.credentials.forget_user(user_id)  # a deactivation holds here at once
        log_business_event(
            "user updated", userId=user_id, adminId=admin_id, changes=sorted(changes)
        )
        return user

    async def _update_keeping_an_admin(self, user_id: str, stored: dict[str, Any]) -> User:
        """A demotion or deactivation: `LastAdmin` when it would leave no active admin,
        under any concurrency (the guard is described in models/user.py)."""
        exit_id = ids.ulid()
        lease_until = utcnow() + timedelta(seconds=ADMIN_EXIT_LEASE_SECONDS)
        current = await user_store.record_pending_exit(self.db, user_id, exit_id, lease_until)
        if current is None:
            raise UserNotFound()
        try:
            if current.is_active_admin and not await user_store.another_admin_stays(
                self.db, user_id, utcnow()
            ):
                raise LastAdmin()
            updated = await user_store.apply_pending_exit(
                self.db, user_id, exit_id, stored, utcnow()
            )
            if updated is None:
                # The lease ran out first: another change may have counted on this admin
                # meanwhile, so this one can no longer vouch for the admin left behind.
                raise LastAdmin()
        except BaseException:
            await user_store.drop_pending_exit(self.db, user_id, exit_id)
            raise
        return updated

    async def ensure_bootstrap_admin(self) -> None:
        """Create the first admin from the settings if that email has no user yet; an existing
        user is never changed."""
        email = self.settings.bootstrap_admin_email
        password = self.settings.bootstrap_admin_password
        if not email or password is None:
            return
        email = email.strip().lower()
        if await user_store.exists_with(self.db, "email", email):
            return
        try:
            await self.register(
                email=email,
                password=password.get_secret_value(),
                name="Administrator",
                phone_number=None,
                role=Role.ADMIN,
            )
        except ConflictError:
            return  # another process created it first
