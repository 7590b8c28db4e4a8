"""The one error hierarchy. Raised anywhere, turned into the contract's error body in
`middleware/errors.py` only, and described per route in the OpenAPI by `schemas/errors.py`.

The classes here fix an HTTP status each. A domain error is a named subclass living beside
the service that raises it (`services/refunds.py: class RefundExceedsAvailable(...)`); it fixes
its code and message and carries the body fields the contract names for it (`body_fields`,
filled in `extra`), so that a service speaks of refunds and payments, never of statuses.
The edge errors that any route can answer (a body that is not JSON, too large, invalid; a
missing credential; the rate limit) are named here.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    status_code: ClassVar[int] = 500
    code: str = "INTERNAL_ERROR"
    message: str = "An unexpected error occurred"
    body_fields: ClassVar[tuple[str, ...]] = ()
    """The fields besides `error`, `message` and `requestId` this error's body carries."""
    retry_after_seconds: int | None = None
    """When set, the answer says when to try again (a `Retry-After` header)."""

    def __init__(
        self,
        code: str | None = None,
        message: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        if message is not None:
            self.message = message
        self.extra = extra or {}
        self.headers = headers or {}
        super().__init__(f"{self.code}: {self.message}")


class BadRequestError(AppError):
    status_code = 400
    code = "BAD_REQUEST"
    message = "The request is malformed"


class UnauthorizedError(AppError):
    status_code = 401
    code = "UNAUTHORIZED"
    message = "Authentication required"

    def __init__(self, code: str | None = None, message: str | None = None) -> None:
        super().__init__(code, message, headers={"WWW-Authenticate": "Bearer"})


class PaymentRequiredError(AppError):
    """402: the payment itself was refused (declined by the issuer)."""

    status_code = 402
    code = "PAYMENT_REQUIRED"
    message = "The payment was refused"


class ForbiddenError(AppError):
    status_code = 403
    code = "FORBIDDEN"
    message = "You are not allowed to do this"


class NotFoundError(AppError):
    status_code = 404
    code = "NOT_FOUND"
    message = "Not found"


class ConflictError(AppError):
    status_code = 409
    code = "CONFLICT"
    message = "The request conflicts with the current state"


class ConcurrentUpdate(ConflictError):
    """A compare-and-set kept losing to other changes of the same thing (rare: a retry wins)."""

    code = "CONCURRENT_UPDATE"
    message = "It was changed by other requests meanwhile; try again"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    message = "The request body is too large"


class HeadersTooLarge(AppError):
    status_code = 431
    code = "HEADERS_TOO_LARGE"
    message = "The request headers are too large"


class UnprocessableError(AppError):
    status_code = 422
    code = "VALIDATION_ERROR"
    message = "The request is invalid"


class TooManyRequests(AppError):
    status_code = 429
    code = "TOO_MANY_REQUESTS"
    message = "Too many requests, please try again later"
    body_fields = ("retryAfter",)


class ServiceUnavailableError(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    message = "The service is temporarily unavailable"


class InvalidJson(BadRequestError):
    code = "INVALID_JSON"
    message = "The request body is not valid JSON"


class ValidationFailed(UnprocessableError):
    """A value of the request is invalid: `details` names each field and what is wrong."""

    body_fields = ("details",)

    def __init__(self, details: list[dict[str, str]]) -> None:
        super().__init__(extra={"details": details})

    @classmethod
    def of_field(cls, field: str, message: str) -> ValidationFailed:
        return cls([{"field": field, "message": message}])


class InvalidCursor(UnprocessableError):
    """A list's cursor that is not one of the caller's own items, or cursors given together
    with what excludes them."""

    code = "INVALID_CURSOR"
    message = "The cursor must be the id of one of your own items in this list"

    @classmethod
    def both(cls) -> InvalidCursor:
        return cls(message="Give startingAfter or endingBefore, not both")

    @classmethod
    def with_page(cls) -> InvalidCursor:
        return cls(message="A cursor (startingAfter, endingBefore) cannot be combined with page")

    @classmethod
    def unknown(cls, name: str, items: str) -> InvalidCursor:
        return cls(message=f"{name} is not one of your {items}")


class StartupError(Exception):
    """A condition that must stop the process at start-up, with a message for the operator."""
