"""The HTTP server side of `serve`: uvicorn's httptools protocol, bounded.

httptools (llhttp, uvicorn's parser) puts no bound on a request's head, and uvicorn has no
option for one: a 32 MiB header or 300,000 headers were read in full — httptools even grows a
header value by concatenation, so one long value costs time quadratic in its length — and
handed to the app. (Only the h11 protocol has a bound, `h11_max_incomplete_event_size`, 16 KiB
by default; it is checked only while the head is still incomplete in its buffer and refused
with a plain-text 400, and h11, pure Python, is the slower parser.)

`BoundedHttpToolsProtocol` counts the bytes of each request until its head is complete: once
they pass MAX_HEAD_BYTES it answers 431 HEADERS_TOO_LARGE itself, with the contract's error
body, before the app sees the request. The exact rule (100 fields, 16 KiB of header fields)
is `middleware/headers.py`'s; this bound leaves room for a request line, and keeps what a
client can make a process buffer to MAX_HEAD_BYTES and one read. The cost is one addition and
one comparison per read of the socket while a head is incomplete, none per header.

A request httptools cannot parse gets the contract's JSON 400 the same way (uvicorn's own is
plain text). After either answer the connection is closed in stages (RFC 9112 §9.6): its
sending side first, then, dropping what the client still sends, all of it once the client has
gone or LINGER_SECONDS have passed. Closing at once, with the client's bytes still arriving,
makes the kernel reset the connection, and a reset may erase the answer on the client's side
before it has been read.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from payments_api.config.constants import MAX_HEADER_BYTES
from payments_api.middleware.security_headers import API_HEADERS
from payments_api.utils.ids import request_id as new_request_id
from payments_api.utils.logger import log_security_event

MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_HEAD_BYTES = MAX_HEADER_BYTES + MAX_REQUEST_LINE_BYTES
"""Bytes of a request, before its head is complete, past which the server refuses it."""
LINGER_SECONDS = 5.0
"""How long a refused connection is kept, discarding input, for the client to read the answer."""


def error_answer(
    status: int,
    code: str,
    message: str,
    request_id: str,
    default_headers: list[tuple[bytes, bytes]],
) -> bytes:
    """A whole HTTP/1.1 response with the contract's error body, closing the connection."""
    body = json.dumps(
        {"error": code, "message": message, "requestId": request_id}, separators=(",", ":")
    ).encode()
    headers = [
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-request-id", request_id.encode()),
        *API_HEADERS,
    ]
    lines = [STATUS_LINE[status], *(name + b": " + value + b"\r\n" for name, value in headers)]
    return b"".join([*lines, b"\r\n", body])


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on each request's head and contract-shaped
    answers (JSON body, `X-Request-ID`) for what the server refuses itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0
        """Bytes received since the current request began, while its head is incomplete."""
        self.in_head = True
        self.refused = False
        self.linger: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # answered already: what the client still sends is dropped unread
        if self.in_head:
            self.head_bytes += len(data)
        super().data_received(data)
        if self.in_head and self.head_bytes > MAX_HEAD_BYTES and not self.refused:
            request_id = self._refuse(
                431,
                "HEADERS_TOO_LARGE",
                f"Request headers are limited to {MAX_HEADER_BYTES} bytes in all",
            )
            log_security_event(
                "request head too large: refused by the server",
                requestId=request_id,
                headBytes=self.head_bytes,
                ip=self.client[0] if self.client else "",
            )

    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head = True  # whatever comes next on this connection is the next request's head
        self.head_bytes = 0

    def send_400_response(self, msg: str) -> None:
        """A request httptools cannot parse: the contract's 400 (uvicorn's is plain text;
        uvicorn has logged it already)."""
        self._refuse(400, "BAD_REQUEST", "The request is not valid HTTP/1.1")

    def _refuse(self, status: int, code: str, message: str) -> str:
        """Answer `status` with the contract's body (its request id returned) and close."""
        self.refused = True
        request_id = new_request_id()
        if self.transport.is_closing():
            return request_id
        if self.cycle is not None and not self.cycle.response_complete:
            # An earlier request on this connection is still being answered: an answer of
            # ours now would land inside that response.
            self.transport.close()
            return request_id
        default_headers = self.server_state.default_headers
        self.transport.write(error_answer(status, code, message, request_id, default_headers))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        return request_id

    def connection_lost(self, exc: Exception | None) -> None:
        if self.linger is not None:
            self.linger.cancel()
        super().connection_lost(exc)
