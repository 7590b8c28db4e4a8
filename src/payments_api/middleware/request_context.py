"""Request context: the request id (the client's `X-Request-ID` when it is sane, else a new
one; echoed on the response and bound to the log context), the client IP (from
`X-Forwarded-For` only when the peer is a trusted proxy), and the per-request state in which
the layers after the edge leave what the edge needs at the end (headers to add to the answer,
who the caller was, the route's template)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import structlog
from starlette.types import Scope

from payments_api.config.constants import REQUEST_ID_MAX_LENGTH
from payments_api.utils import ids

RESPONSE_HEADERS = "response_headers"
"""The state key under which a layer leaves headers for the edge to add to the answer."""


def _sane(raw: bytes) -> bool:
    return 0 < len(raw) <= REQUEST_ID_MAX_LENGTH and all(0x20 <= byte < 0x7F for byte in raw)


def request_state(scope: Scope) -> dict[str, object]:
    """The per-request state dict that `request.state` also reads and writes."""
    state: dict[str, object] = scope.setdefault("state", {})
    return state


IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _is_trusted(address: str, trusted: Sequence[IpNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def resolve_client_ip(peer: str, forwarded_for: str | None, trusted: Sequence[IpNetwork]) -> str:
    """The peer, or — when the peer is a trusted proxy — the right-most address of
    `X-Forwarded-For` that is not itself a trusted proxy (the left part can be forged)."""
    if not forwarded_for or not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def add_response_headers(scope: Scope, headers: Sequence[tuple[bytes, bytes]]) -> None:
    """Headers the edge adds to this request's answer, whoever sends it."""
    state = request_state(scope)
    added = state.get(RESPONSE_HEADERS)
    state[RESPONSE_HEADERS] = [*added, *headers] if isinstance(added, list) else list(headers)


def response_headers(state: dict[str, object]) -> list[tuple[bytes, bytes]]:
    """The headers layers inside the edge left for this request's answer."""
    added = state.get(RESPONSE_HEADERS)
    return added if isinstance(added, list) else []


def start_request(
    scope: Scope, request_ids: Sequence[bytes], forwarded_for: bytes, trusted: Sequence[IpNetwork]
) -> tuple[str, dict[str, object]]:
    """The request's id (the first sane `X-Request-ID`, else a new one) and its fresh state,
    put on the scope and bound to the log context."""
    sane = next((raw.decode("ascii") for raw in request_ids if _sane(raw)), "")
    request_id = sane or ids.request_id()
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    client_ip = peer
    if trusted and forwarded_for:
        client_ip = resolve_client_ip(peer, forwarded_for.decode("latin-1"), trusted)
    # A fresh dict per request: some servers hand every request the same lifespan state.
    state = {**scope.get("state", {}), "request_id": request_id, "client_ip": client_ip}
    scope["state"] = state
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(requestId=request_id)
    return request_id, state
