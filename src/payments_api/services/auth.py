"""Credentials: access tokens for users, API keys for merchants, and who a bearer is."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import jwt

from payments_api.config.constants import API_KEY_PREFIX
from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.errors import ForbiddenError, UnauthorizedError
from payments_api.models import user as user_store
from payments_api.models.user import User
from payments_api.services.credentials import Credentials
from payments_api.services.passwords import verify_password
from payments_api.utils.crypto import sha256_hex
from payments_api.utils.logger import log_security_event

JWT_ALGORITHM = "HS256"
VERIFIED_TOKENS_KEPT = 10_000


class InvalidCredentials(UnauthorizedError):
    code = "INVALID_CREDENTIALS"
    message = "Invalid email or password"


class UserInactive(ForbiddenError):
    code = "USER_INACTIVE"
    message = "This account is deactivated"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (by a verified access token) or a merchant (by its API key)."""

    kind: Literal["user", "merchant"]
    id: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


class AuthService:
    def __init__(self, settings: Settings, db: Database, credentials: Credentials) -> None:
        self.settings = settings
        self.db = db
        self.credentials = credentials
        self._key = settings.jwt_signing_key
        self._verified: dict[str, tuple[str, float]] = {}

    async def issue_token(self, email: str, password: str) -> IssuedToken:
        """Same answer, and the same work, for an unknown email and a wrong password."""
        user = await user_store.find_by_email(self.db, email.strip().lower())
        valid = await verify_password(user.password_hash if user else None, password)
        if user is None or not valid:
            log_security_event("login failed", email=email, reason="invalid_credentials")
            raise InvalidCredentials()
        if not user.is_active:
            log_security_event("login refused", userId=user.id, reason="user_inactive")
            raise UserInactive()
        return IssuedToken(self.encode_token(user), self.settings.access_token_ttl_seconds)

    def encode_token(self, user: User) -> str:
        now = int(time.time())
        claims = {"sub": user.id, "iat": now, "exp": now + self.settings.access_token_ttl_seconds}
        return jwt.encode(claims, self._key, algorithm=JWT_ALGORITHM)

    def decode_token(self, token: str) -> str | None:
        """The user id of a valid access token, else None. Only HS256 is accepted, so `none`
        and key-confusion tokens fail; `exp` and `sub` are required.

        Tokens that verified are remembered until they expire (a bounded map keyed by the whole
        token, so only a byte-identical token hits): a client sends the same token for up to
        its whole lifetime, and verifying it again each time was a tenth of a cached read."""
        remembered = self._verified.get(token)
        if remembered is not None:
            if time.time() < remembered[1]:
                return remembered[0]
            del self._verified[token]
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[JWT_ALGORITHM],
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            return None
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()
        self._verified[token] = (subject, float(claims["exp"]))
        return subject

    async def resolve(self, authorization: str | None) -> Principal:
        """The caller behind an `Authorization` header: `UnauthorizedError` for no valid
        credential, `UserInactive` for a deactivated user's token (services/credentials.py
        says how soon a change is seen)."""
        if not authorization:
            raise UnauthorizedError(message="Authentication required")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise UnauthorizedError(message="Use an 'Authorization: Bearer <token>' header")
        if credential.startswith(API_KEY_PREFIX + "_"):
            holder = await self.credentials.key_holder(sha256_hex(credential))
            if holder is None:
                raise UnauthorizedError(message="Invalid API key")
            return Principal("merchant", holder.merchant.id)
        user_id = self.decode_token(credential)
        if user_id is None:
            raise UnauthorizedError(message="Invalid or expired token")
        active = await self.credentials.user_is_active(user_id)
        if active is None:
            raise UnauthorizedError(message="Invalid or expired token")
        if not active:
            raise UserInactive()
        return Principal("user", user_id)
