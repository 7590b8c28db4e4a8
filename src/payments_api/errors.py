"""The one error hierarchy. Raised anywhere, turned into the contract's error body in
`middleware/errors.py` only.

Each class fixes an HTTP status and a default code; the code can be narrowed per raise
(`NotFoundError("PAYMENT_NOT_FOUND", "Payment not found")`). `extra` holds the additional
body fields the contract names (`remainingToday`, `availableAmount`, `payment`, ...).
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    default_status: ClassVar[int] = 500
    default_code: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "An unexpected error occurred"

    def __init__(
        self,
        code: str | None = None,
        message: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        self.status_code = status or self.default_status
        self.code = code or self.default_code
        self.message = message or self.default_message
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(f"{self.code}: {self.message}")


class BadRequestError(AppError):
    default_status = 400
    default_code = "BAD_REQUEST"
    default_message = "The request is malformed"


class UnauthorizedError(AppError):
    default_status = 401
    default_code = "UNAUTHORIZED"
    default_message = "Authentication required"

    def __init__(self, code: str | None = None, message: str | None = None) -> None:
        super().__init__(code, message, headers={"WWW-Authenticate": "Bearer"})


class ForbiddenError(AppError):
    default_status = 403
    default_code = "FORBIDDEN"
    default_message = "You are not allowed to do this"


class NotFoundError(AppError):
    default_status = 404
    default_code = "NOT_FOUND"
    default_message = "Not found"


class ConflictError(AppError):
    default_status = 409
    default_code = "CONFLICT"
    default_message = "The request conflicts with the current state"


class UnprocessableError(AppError):
    default_status = 422
    default_code = "VALIDATION_ERROR"
    default_message = "The request is invalid"


class ServiceUnavailableError(AppError):
    default_status = 503
    default_code = "SERVICE_UNAVAILABLE"
    default_message = "The service is temporarily unavailable"


class StartupError(Exception):
    """A condition that must stop the process at start-up, with a message for the operator."""
