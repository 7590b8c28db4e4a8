"""What every request and response body shares: camelCase on the wire, the success envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
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
