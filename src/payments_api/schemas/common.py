"""What every request and response body shares: camelCase on the wire, the success envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from payments_api.utils.clock import as_utc, iso_utc

ApiDatetime = Annotated[
    datetime, AfterValidator(as_utc), PlainSerializer(iso_utc, return_type=str, when_used="json")
]
"""An instant on the wire: UTC, milliseconds, `Z`."""


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


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """`responses=` for a route: each status it can answer with the error body."""
    return {status: {"model": ErrorBody} for status in statuses}
