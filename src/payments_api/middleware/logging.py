"""Access log and request metrics: one JSON line and one observation per request."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payments_api.middleware.request_context import request_state
from payments_api.utils.logger import get_logger
from payments_api.utils.metrics import Metrics

logger = get_logger("http")

UNMATCHED_ROUTE = "<unmatched>"


def client_ip(scope: Scope) -> str:
    """The client address as resolved for this request (after trusted-proxy handling)."""
    state = request_state(scope)
    resolved = state.get("client_ip")
    if isinstance(resolved, str):
        return resolved
    client = scope.get("client")
    return str(client[0]) if client else ""


def route_template(scope: Scope) -> str:
    """`/api/v1/payments/{paymentId}`, never the raw path, so metric labels stay bounded.
    A request answered before routing names its template in the request state."""
    named = request_state(scope).get("route_template")
    if isinstance(named, str):
        return named
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture_status)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(scope["method"], route_template(scope), status, elapsed)
            self._log(scope, status, elapsed)

    @staticmethod
    def _log(scope: Scope, status: int, elapsed: float) -> None:
        state = request_state(scope)
        fields: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "statusCode": status,
            "durationMs": round(elapsed * 1000, 2),
            "userAgent": _header(scope, b"user-agent"),
            "ip": client_ip(scope),
        }
        for key in ("userId", "merchantId"):
            value = state.get(key)
            if value:
                fields[key] = value
        if status >= 500:
            logger.error("request completed", **fields)
        elif status >= 400:
            logger.warning("request completed", **fields)
        else:
            logger.info("request completed", **fields)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return ""
