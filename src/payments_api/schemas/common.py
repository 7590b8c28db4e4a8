"""What every request and response body shares: camelCase on the wire, the success envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
)
from pydantic.alias_generators import to_camel

from payments_api.utils.clock import as_utc, iso_utc

ApiDatetime = Annotated[
    datetime, AfterValidator(as_utc), PlainSerializer(iso_utc, return_type=str, when_used="json")
]
"""An instant on the wire: UTC, milliseconds, `Z`."""


PATTERN_MESSAGES: dict[str, str] = {}
"""What a value that does not match a pattern is told, by pattern (middleware/errors.py):
a person reads the message, not the regular expression."""


def pattern(regex: str, message: str) -> str:
    """`regex`, with the message a value that does not match it gets."""
    PATTERN_MESSAGES[regex] = message
    return regex


NOT_BLANK = pattern(r"[^\t\n\v\f\r ]", "must not be blank")
"""A pattern (JSON Schema's, searched anywhere): at least one character that is not white
space. Text is kept as the client wrote it, never trimmed, so the description's limits are
exactly the ones checked: a trimmed value would pass checks its raw form fails, and fail
ones it passes."""


def text(max_length: int) -> StringConstraints:
    """Free text of 1 to `max_length` characters, not blank."""
    return StringConstraints(min_length=1, max_length=max_length, pattern=NOT_BLANK)


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Envelope(CamelModel):
    success: Literal[True] = True


class ErrorDetail(CamelModel):
    field: str
    message: str


class ErrorBody(CamelModel):
    """The contract's error body, for the OpenAPI description."""

    error: str = Field(examples=["VALIDATION_ERROR"])
    message: str
    request_id: str
    details: list[ErrorDetail] | None = None


_DESCRIPTIONS = {
    400: "Malformed request: `INVALID_JSON` (a body that is not JSON), or a header the route "
    "reads is missing or malformed",
    401: "`UNAUTHORIZED`: missing, malformed, expired or unknown credentials",
    402: "`PAYMENT_DECLINED`, with the failed `payment`",
    403: "`FORBIDDEN`: this kind of caller may not use the route; or `USER_INACTIVE`",
    404: "Not found (or not the caller's); the code names what",
    409: "Conflicts with the current state; the code names how",
    413: "`PAYLOAD_TOO_LARGE`: the body is over `MAX_BODY_BYTES`",
    422: "`VALIDATION_ERROR` with `details`, or a business rule the code names",
    429: "`TOO_MANY_REQUESTS`: over `RATE_LIMIT`; `retryAfter` and `Retry-After` say when to retry",
    503: "A dependency could not be reached; the code names which",
}

JSON_BODY = (400, 413, 422)
"""What a route with a JSON body can answer before it runs: INVALID_JSON, PAYLOAD_TOO_LARGE,
VALIDATION_ERROR."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an `/api` route: each status it can answer with the error body, and
    the rate limiter's 429, which every `/api` route can answer."""
    return {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
        for status in sorted({*statuses, 429})
    }
