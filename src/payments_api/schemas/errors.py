"""The error answers of each route, for the OpenAPI description: by error type, so that the
description lists every code a route can answer under each status, with the body that code
carries (Polar's `responses={403: {"model": RefundedAlready.schema()}}`).

A route names the errors it raises (`error_responses(*JSON_BODY, PaymentNotFound, ...)`); the
rate limiter's 429, which every `/api` route can answer, is added to each.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from payments_api.errors import (
    AppError,
    InvalidJson,
    PayloadTooLarge,
    TooManyRequests,
    ValidationFailed,
)
from payments_api.schemas.common import ErrorDetail
from payments_api.schemas.payments import PaymentOut

ErrorType = type[AppError]

JSON_BODY: tuple[ErrorType, ...] = (InvalidJson, PayloadTooLarge, ValidationFailed)
"""What a route with a JSON body can answer before it runs."""

_BODY_FIELD_TYPES: dict[str, Any] = {
    "details": list[ErrorDetail],
    "payment": PaymentOut,
    "availableAmount": int,
    "authorizedAmount": int,
    "remainingToday": int,
    "maxAmount": int,
    "retryAfter": int,
}
"""The wire type of each body field an error may carry (`AppError.body_fields`)."""

_STATUS_TITLES = {
    400: "Malformed request",
    401: "Missing, malformed, expired or unknown credentials",
    402: "The payment was declined",
    403: "Not allowed",
    404: "Not found (or not the caller's)",
    409: "Conflicts with the current state",
    413: "The body is over `MAX_BODY_BYTES`",
    422: "Invalid request, or a business rule refused it",
    429: "Over `RATE_LIMIT`; `retryAfter` and `Retry-After` say when to retry",
    503: "A dependency could not be reached, or did not confirm",
}


class _ErrorBodyBase(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    message: str
    request_id: str = Field(alias="requestId")


_MODELS: dict[ErrorType, type[BaseModel]] = {}


def error_model(error: ErrorType) -> type[BaseModel]:
    """The body of `error` as a model named after it (made once): its code as a constant,
    then the fields it carries."""
    model = _MODELS.get(error)
    if model is None:
        fields: dict[str, Any] = {"error": (Literal[error.code], ...)}
        for name in error.body_fields:
            fields[name] = (_BODY_FIELD_TYPES[name], ...)
        model = _MODELS[error] = create_model(error.__name__, __base__=_ErrorBodyBase, **fields)
    return model


def _described(errors: list[ErrorType]) -> str:
    return "".join(f"\n- `{error.code}`: {error.message}" for error in errors)


def error_responses(*errors: ErrorType) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an `/api` route: under each status, every error it can answer."""
    by_status: dict[int, list[ErrorType]] = defaultdict(list)
    documented: tuple[ErrorType, ...] = (*errors, TooManyRequests)
    for error in documented:
        listed = by_status[error.status_code]
        if all(other.code != error.code for other in listed):
            listed.append(error)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        listed = by_status[status]
        models = tuple(error_model(error) for error in listed)
        model: Any = models[0] if len(models) == 1 else Union[models]  # noqa: UP007
        responses[status] = {
            "model": model,
            "description": f"{_STATUS_TITLES[status]}:\n{_described(listed)}",
        }
    return responses
