"""413 for bodies over `MAX_BODY_BYTES`: at once from `Content-Length`, or as soon as a
chunked body passes the limit, before the rest is read."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payments_api.errors import PayloadTooLarge
from payments_api.middleware.errors import send_error

_MESSAGE = "The request body exceeds the limit of {limit} bytes"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.max_bytes:
                    await self._reject(scope, send)
                    return
                break

        received = 0
        rejected = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    rejected = True
                    if not response_started:
                        await self._reject(scope, send)
                    # The app sees a client that went away; it must not answer a second time.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if rejected:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        await send_error(
            scope, send, PayloadTooLarge(message=_MESSAGE.format(limit=self.max_bytes))
        )
