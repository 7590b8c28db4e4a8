"""413 for bodies over `MAX_BODY_BYTES`: at once from `Content-Length`, or as soon as a
chunked body passes the limit, before the rest is read. Only a body of no declared length is
counted (and `receive` and `send` wrapped): the server delivers no more of a body than its
`Content-Length`, and a GET without either header has none."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payments_api.errors import PayloadTooLarge
from payments_api.middleware.errors import send_error

_NO_BODY = frozenset({"GET", "HEAD"})
"""Methods whose request, without `Content-Length` or `Transfer-Encoding`, has no body."""
_MESSAGE = "The request body exceeds the limit of {limit} bytes"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length" and length is None:
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        declared = length is not None and length.isdigit()
        if declared and int(length or b"0") > self.max_bytes:
            return self._reject(scope, send)
        if not chunked and (declared or scope["method"] in _NO_BODY):
            # A body of a declared length, which the server delivers no more of, or none:
            # handed on, with no frame of ours beneath.
            return self.app(scope, receive, send)
        return self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body of no declared length, counted as it arrives."""
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
