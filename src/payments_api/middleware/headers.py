"""Request headers as RFC 9110 reads them, settled once, at the edge, for everything after it.

- A field value is compared without the optional whitespace (spaces and tabs) around it, so
  `Idempotency-Key: "k  "` and `"k"` are one key. The servers differ (h11 trims, httptools
  keeps trailing whitespace, an ASGI test transport keeps both), so the values are trimmed
  before any middleware, dependency or route reads a header: no call site has to remember.
- More than MAX_HEADER_COUNT fields, or more than MAX_HEADER_BYTES in all (each field counted
  as its `name: value` line with its CRLF), is a 431 HEADERS_TOO_LARGE. The server refuses a
  request head far past that before reading it in full (`server.py`); this is the exact rule.
- The same pass picks out the few fields the edge itself needs (request id, forwarded-for,
  origin, preflight, user agent), so no later layer walks the list again for them.

Cost per request: one pass over the header list — two `len()`, one `bytes.strip()` (which
returns the very same object when there is nothing to trim) and one dict look-up per field —
and a new list only for a request that had whitespace to trim.
"""

from __future__ import annotations

from dataclasses import dataclass

from payments_api.config.constants import HEADER_WHITESPACE, MAX_HEADER_BYTES, MAX_HEADER_COUNT
from payments_api.errors import HeadersTooLarge
from payments_api.utils.logger import log_security_event

LINE_OVERHEAD = len(b": \r\n")
"""What a field's line adds to its name and value."""

Headers = list[tuple[bytes, bytes]]

# The fields the edge reads, by the attribute of RequestHead that keeps them.
_PICKED = {
    b"x-request-id": "request_ids",
    b"x-forwarded-for": "forwarded_for",
    b"origin": "origin",
    b"access-control-request-method": "preflight_method",
    b"user-agent": "user_agent",
}


@dataclass(slots=True)
class RequestHead:
    """What one pass over a request's headers found (values trimmed)."""

    headers: Headers
    """The header list to hand on: the request's own, or a trimmed copy."""
    count: int
    size: int | None
    """The head's size by the rule above; None when the count alone refused it (not summed)."""
    request_ids: list[bytes]
    forwarded_for: bytes = b""
    """The last `X-Forwarded-For` field."""
    origin: bytes = b""
    """The last `Origin` field."""
    preflight_method: bytes = b""
    user_agent: bytes = b""
    """The first `User-Agent` field."""

    def too_large(self, path: str) -> HeadersTooLarge | None:
        """The 431 this head earns, if any (logged as a security event)."""
        if self.size is not None and self.size <= MAX_HEADER_BYTES:
            return None  # a size is summed only for a head within the count
        limits = f"{MAX_HEADER_COUNT} fields and {MAX_HEADER_BYTES} bytes in all"
        log_security_event(
            "request headers too large", headerCount=self.count, headerBytes=self.size, path=path
        )
        return HeadersTooLarge(message=f"Request headers are limited to {limits}")


def read_head(headers: Headers) -> RequestHead:
    """Trim, measure and pick out the edge's fields in one pass over `headers`."""
    count = len(headers)
    head = RequestHead(headers, count, None, [])
    if count > MAX_HEADER_COUNT:
        return head
    size = count * LINE_OVERHEAD
    trimmed: Headers | None = None
    for index, (name, value) in enumerate(headers):
        size += len(name) + len(value)
        bare = value.strip(HEADER_WHITESPACE)
        if bare is not value:
            if trimmed is None:
                trimmed = list(headers)
            trimmed[index] = (name, bare)
        picked = _PICKED.get(name)
        if picked is None:
            continue
        if picked == "request_ids":
            head.request_ids.append(bare)
        elif picked != "user_agent" or not head.user_agent:
            setattr(head, picked, bare)
    head.size = size
    if trimmed is not None:
        head.headers = trimmed
    return head
