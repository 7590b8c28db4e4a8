"""What every stored document shares: camelCase field names in MongoDB, UTC datetimes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from payments_api.utils.clock import as_utc

UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


class Document(BaseModel):
    """A stored document. `id` is the prefixed id, kept as MongoDB's `_id`."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_enum_values=True
    )

    @classmethod
    def from_mongo(cls, raw: dict[str, Any]) -> Self:
        return cls.model_validate(raw)

    def to_mongo(self) -> dict[str, Any]:
        """Fields by their stored names; unset optional fields are left out, not stored as null
        (so sparse unique indexes skip them)."""
        return self.model_dump(by_alias=True, exclude_none=True)
