"""Request context: the request id (the client's `X-Request-ID` when it is sane, else a new
one; echoed on the response and bound to the log context) and the client IP (from
`X-Forwarded-For` only when the peer is a trusted proxy)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payments_api.config.constants import HEADER_WHITESPACE, REQUEST_ID_MAX_LENGTH
from payments_api.utils.ids import ulid


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


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[IpNetwork] = ()) -> None:
        self.app = app
        self.trusted = list(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        forwarded_for = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                value = value.strip(HEADER_WHITESPACE)  # it runs before RequestHeadersMiddleware
                if not request_id and _sane(value):
                    request_id = value.decode("ascii")
            elif name == b"x-forwarded-for":
                forwarded_for = value.decode("latin-1")
        if not request_id:
            request_id = ulid()
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        client_ip = resolve_client_ip(peer, forwarded_for, self.trusted) if self.trusted else peer
        # A fresh dict per request: some servers hand every request the same lifespan state.
        scope["state"] = {
            **scope.get("state", {}),
            "request_id": request_id,
            "client_ip": client_ip,
        }
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(requestId=request_id)
        header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
