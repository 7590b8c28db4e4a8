"""The headers every route shares, added to the OpenAPI description FastAPI builds.

The middleware that reads or sets them (request context, rate limit, auth) sees no route, so
no route can declare them; they are described here once for all operations instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from payments_api.config.constants import REQUEST_ID_MAX_LENGTH
from payments_api.routes.openapi_examples import describe_examples

API_PREFIX = "/api/"

HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's id: the client's `X-Request-ID` when it sent one of "
        f"1-{REQUEST_ID_MAX_LENGTH} printable ASCII characters, else a new one. Logs carry it.",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": REQUEST_ID_MAX_LENGTH,
            "pattern": f"^[ -~]{{1,{REQUEST_ID_MAX_LENGTH}}}$",
        },
    },
    "RateLimit-Limit": {
        "description": "Requests allowed per window (`RATE_LIMIT`), for this caller.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in the current window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the window resets.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "WWW-Authenticate": {
        "description": "`Bearer`: the credential to send.",
        "schema": {"type": "string", "enum": ["Bearer"]},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the answer to an earlier request with the same "
        "Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}

REQUEST_ID_PARAMETER = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "description": "Optional: an id for this request, echoed in the `X-Request-ID` answer "
    f"header and the logs when it is 1-{REQUEST_ID_MAX_LENGTH} printable ASCII characters; "
    "any other value is replaced by a new id (never refused).",
    "schema": {"type": "string"},
}


def _response_headers(path: str, status: int, operation: dict[str, Any]) -> dict[str, Any]:
    """The headers an answer of `status` on `path` carries, each marked required or not."""
    idempotent = any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    names = [("X-Request-ID", True)]
    if path.startswith(API_PREFIX):
        # Absent only when Redis could not count the request (it is let through then).
        names += [(name, False) for name in ("RateLimit-Limit", "RateLimit-Remaining")]
        names.append(("RateLimit-Reset", False))
    if status == 429:
        names.append(("Retry-After", True))
    if status == 401:
        names.append(("WWW-Authenticate", True))
    if idempotent and status == 409:
        names.append(("Retry-After", False))  # IDEMPOTENCY_KEY_IN_USE says when to retry
    if idempotent and status in (200, 202, 402, 503):
        names.append(("Idempotent-Replayed", False))
    return {name: {**HEADERS[name], "required": required} for name, required in names}


def describe_shared_headers(document: dict[str, Any]) -> None:
    """Add to every operation of `document` the X-Request-ID it may send and the headers each
    of its answers carries."""
    for path, item in document["paths"].items():
        for operation in item.values():
            operation["parameters"] = [*operation.get("parameters", []), REQUEST_ID_PARAMETER]
            for status, response in operation["responses"].items():
                headers = _response_headers(path, int(status), operation)
                response["headers"] = {**response.get("headers", {}), **headers}


def install(app: FastAPI) -> None:
    """Make `app.openapi()` (and so /openapi.json and /docs) include the shared headers and
    the examples."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()  # FastAPI's own; it keeps it as app.openapi_schema
        describe_shared_headers(document)
        describe_examples(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
