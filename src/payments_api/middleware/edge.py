"""The edge: the one layer every request passes first and every answer passes last.

What each request gets here, in this order:
1. one pass over its headers (`headers.py`): trimmed, measured (431 past the limits), and the
   edge's own fields picked out;
2. its request id and client IP, in a fresh request state and the log context
   (`request_context.py`);
3. a CORS preflight answered (`cors.py`);
4. then the rest of the stack, with ONE wrapper around `send` that, at the start of the answer,
   drops any header naming the software and appends the request id, the security headers
   (`security_headers.py`), the CORS headers and whatever the layers inside left in the state
   (the rate limiter's `RateLimit-*`) — all prepared before the answer, most of them once per
   process;
5. an exception nobody handled, logged and answered as a bare 500 (`errors.py`);
6. its metrics observation and access line (`logging.py`), whatever happened.

These were six layers, each wrapping `send`; a cached read spent a sixth of its time passing
through them. One layer does the same work once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payments_api.errors import AppError
from payments_api.middleware.cors import CorsPolicy
from payments_api.middleware.errors import log_unhandled, send_error
from payments_api.middleware.headers import read_head
from payments_api.middleware.logging import AccessLog
from payments_api.middleware.request_context import IpNetwork, response_headers, start_request
from payments_api.middleware.security_headers import security_headers, without_naming_software
from payments_api.utils.metrics import Metrics


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        allowed_origins: list[str],
        trusted_proxies: Sequence[IpNetwork] = (),
    ) -> None:
        self.app = app
        self.access_log = AccessLog(metrics)
        self.cors = CorsPolicy(allowed_origins)
        self.trusted = list(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        head = read_head(scope["headers"])
        scope["headers"] = head.headers
        request_id, state = start_request(scope, head.request_ids, head.forwarded_for, self.trusted)
        refusal = head.too_large(scope["path"])
        preflight = (
            refusal is None
            and bool(head.origin and head.preflight_method)
            and scope["method"] == "OPTIONS"
        )
        added = [(b"x-request-id", request_id.encode("ascii")), *security_headers(scope["path"])]
        if head.origin and refusal is None and not preflight:
            added += self.cors.headers_for(head.origin)
        status = 0

        async def send_at_edge(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = without_naming_software(message.get("headers", []))
                message["headers"] = [*headers, *added, *response_headers(state)]
            await send(message)

        try:
            if refusal is not None:
                await send_error(scope, send_at_edge, refusal)
            elif preflight:
                await self.cors.preflight(scope, send_at_edge, head.origin)
            else:
                await self.app(scope, receive, send_at_edge)
        except Exception:
            log_unhandled(scope)
            if status:
                raise
            await send_error(scope, send_at_edge, AppError())
        finally:
            self.access_log.record(
                scope, status or 500, time.perf_counter() - started, head.user_agent
            )
