"""The one place where errors become the contract's error body:
`{"error": "CODE", "message": "…", "requestId": "…", …}`.

`AppError`, FastAPI's validation errors and Starlette's routing errors are handled as
exception handlers; anything else is caught at the edge (`middleware/edge.py`), logged with its
traceback and answered as a bare 500 `INTERNAL_ERROR`, so no internal detail reaches a client.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope, Send

from payments_api.errors import AppError, InvalidJson
from payments_api.middleware.methods import allowed_methods
from payments_api.middleware.request_context import request_state
from payments_api.schemas.common import PATTERN_MESSAGES
from payments_api.utils.logger import get_logger, log_security_event

logger = get_logger("errors")

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "TOO_MANY_REQUESTS",
}


# A missing/invalid credential or a caller without the right: logged here as a security event.
# Domain refusals (INVALID_CREDENTIALS, USER_INACTIVE) are logged by the service that knows
# their details, so a failed login is one security line, not two.
_ACCESS_DENIED = frozenset({"UNAUTHORIZED", "FORBIDDEN"})

# What `json.loads` raises besides a syntax error (which FastAPI reports as `json_invalid`):
# invalid UTF-8 (UnicodeDecodeError), an integer past Python's digit limit (ValueError) and
# nesting past the recursion limit (RecursionError). FastAPI turns each into a bare 400.
_UNPARSABLE_BODY = (ValueError, RecursionError)


def error_body(
    scope: Scope, code: str, message: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "error": code,
        "message": message,
        "requestId": request_state(scope).get("request_id", ""),
    }
    if extra:
        body.update(extra)
    return body


def _response(
    request: Request,
    status: int,
    code: str,
    message: str,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(request.scope, code, message, extra), status_code=status, headers=headers
    )


async def send_error(
    scope: Scope, send: Send, error: AppError, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with `error`'s body straight from a pure ASGI middleware."""
    body = error_body(scope, error.code, error.message, error.extra)
    encoded = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(encoded)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": encoded})


async def handle_app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if exc.code in _ACCESS_DENIED:
        log_security_event(
            "access denied", error=exc.code, statusCode=exc.status_code, path=request.url.path
        )
    headers = exc.headers
    if exc.retry_after_seconds is not None:
        headers = {**headers, "Retry-After": str(exc.retry_after_seconds)}
    return _response(request, exc.status_code, exc.code, exc.message, exc.extra, headers)


def _field_name(loc: Sequence[int | str]) -> str:
    """("body", "amount") → "amount"; ("query", "limit") → "limit"; ("body",) → "body"."""
    parts = [str(part) for part in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return _response(request, 400, InvalidJson.code, InvalidJson.message)
    details = [
        {"field": _field_name(error.get("loc", ())), "message": _message(error)} for error in errors
    ]
    return _response(
        request, 422, "VALIDATION_ERROR", "The request is invalid", {"details": details}
    )


def _message(error: dict[str, Any]) -> str:
    if error.get("type") == "string_pattern_mismatch":
        return PATTERN_MESSAGES.get(str(error.get("ctx", {}).get("pattern")), "has an invalid form")
    message = str(error.get("msg", "Invalid value"))
    return message.removeprefix("Value error, ")


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers) if exc.headers else None
    if status == 400 and isinstance(exc.__cause__, _UNPARSABLE_BODY):
        code, message = InvalidJson.code, InvalidJson.message
    elif status == 404:
        code, message = "ROUTE_NOT_FOUND", f"Cannot {request.method} {request.url.path}"
    elif status == 405:
        code, message = "METHOD_NOT_ALLOWED", f"Cannot {request.method} {request.url.path}"
        headers = {
            **(headers or {}),
            "Allow": ", ".join(allowed_methods(request.app.routes, request.url.path)),
        }
    else:
        code = _STATUS_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
        message = exc.detail if isinstance(exc.detail, str) and status < 500 else "Request failed"
    return _response(request, status, code, message, headers=headers)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, handle_app_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)


def log_unhandled(scope: Scope) -> None:
    """An exception nobody handled, with its traceback (the edge answers it as a bare 500)."""
    logger.exception("unhandled error", method=scope["method"], path=scope["path"])
