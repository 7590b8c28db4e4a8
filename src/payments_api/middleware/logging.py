"""Access log and request metrics: one JSON line and one observation per request."""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

from payments_api.middleware.request_context import request_state
from payments_api.utils.logger import log_request
from payments_api.utils.metrics import Metrics

UNMATCHED_ROUTE = "<unmatched>"


def client_ip(scope: Scope, state: dict[str, object]) -> str:
    """The client address as resolved for this request (after trusted-proxy handling)."""
    resolved = state.get("client_ip")
    if isinstance(resolved, str):
        return resolved
    client = scope.get("client")
    return str(client[0]) if client else ""


def route_template(scope: Scope, state: dict[str, object]) -> str:
    """`/api/v1/payments/{paymentId}`, never the raw path, so metric labels stay bounded.
    A request answered before routing names its template in the request state."""
    named = state.get("route_template")
    if isinstance(named, str):
        return named
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class AccessLog:
    """What the edge records of each request once it is answered: its metrics observation
    and its access line (warning for a 4xx, error for a 5xx)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def record(self, scope: Scope, status: int, elapsed: float, user_agent: bytes) -> None:
        state = request_state(scope)
        self.metrics.observe_request(scope["method"], route_template(scope, state), status, elapsed)
        fields: dict[str, Any] = {
            "requestId": state.get("request_id", ""),
            "method": scope["method"],
            "path": scope["path"],
            "statusCode": status,
            "durationMs": round(elapsed * 1000, 2),
            "userAgent": user_agent.decode("latin-1"),
            "ip": client_ip(scope, state),
        }
        for key in ("userId", "merchantId"):
            value = state.get(key)
            if value:
                fields[key] = value
        log_request("error" if status >= 500 else "warning" if status >= 400 else "info", fields)
