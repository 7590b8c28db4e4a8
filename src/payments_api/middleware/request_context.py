"""Request id: the client's `X-Request-ID` when it is sane, else a new one; echoed on the
response, kept in the request's state and bound to the log context."""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payments_api.config.constants import REQUEST_ID_MAX_LENGTH
from payments_api.utils.ids import ulid


def _sane(raw: bytes) -> bool:
    return 0 < len(raw) <= REQUEST_ID_MAX_LENGTH and all(0x20 <= byte < 0x7F for byte in raw)


def request_state(scope: Scope) -> dict[str, object]:
    """The per-request state dict that `request.state` also reads and writes."""
    state: dict[str, object] = scope.setdefault("state", {})
    return state


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _sane(value):
                    request_id = value.decode("ascii")
                break
        if not request_id:
            request_id = ulid()
        # A fresh dict per request: some servers hand every request the same lifespan state.
        scope["state"] = {**scope.get("state", {}), "request_id": request_id}
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(requestId=request_id)
        header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
