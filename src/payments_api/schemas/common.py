"""What every request and response body shares: camelCase on the wire, the success envelope."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel


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


NonEmptyText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
