"""The Idempotency-Key header: read and checked here (a missing or malformed key is the
contract's 400, not FastAPI's 422), and declared in the OpenAPI by `idempotency_key_parameter`."""

from __future__ import annotations

from typing import Any

from payments_api.errors import BadRequestError


class MissingIdempotencyKey(BadRequestError):
    code = "MISSING_IDEMPOTENCY_KEY"
    message = "The Idempotency-Key header is required"


class InvalidIdempotencyKey(BadRequestError):
    code = "INVALID_IDEMPOTENCY_KEY"
    message = "The Idempotency-Key must be 1-255 printable ASCII characters"


MAX_IDEMPOTENCY_KEY_LENGTH = 255


def optional_idempotency_key(raw: str | None) -> str | None:
    """1-255 printable ASCII characters, or absent; 400 INVALID_IDEMPOTENCY_KEY otherwise."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_IDEMPOTENCY_KEY_LENGTH or not all(
        " " <= char <= "~" for char in raw
    ):
        raise InvalidIdempotencyKey()
    return raw


IDEMPOTENCY_KEY_PATTERN = f"^[ -~]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}$"
"""What `optional_idempotency_key` accepts, as a JSON Schema pattern: printable ASCII."""


def idempotency_key_parameter(*, required: bool) -> dict[str, Any]:
    """The Idempotency-Key header as the OpenAPI description declares it. The route reads the
    header itself (hidden from the schema), so that a missing or malformed key is this
    contract's 400, not a 422."""
    presence = "Required" if required else "Optional"
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": required,
        "description": f"{presence}: 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters, "
        "scoped to the caller; a retry with the same key and body is answered with the first "
        "result. Missing (where required) or malformed: 400 MISSING_IDEMPOTENCY_KEY / "
        "INVALID_IDEMPOTENCY_KEY.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH,
            "pattern": IDEMPOTENCY_KEY_PATTERN,
        },
    }


def required_idempotency_key(raw: str | None) -> str:
    key = optional_idempotency_key(raw)
    if key is None:
        raise MissingIdempotencyKey()
    return key
