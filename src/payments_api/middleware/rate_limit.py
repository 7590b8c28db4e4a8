"""Rate limits on `/api/*`: RATE_LIMIT per caller (the user or merchant when the credential is
valid, else the client IP), counted in Redis with the `limits` library's asyncio API so every
server process shares one budget.

The caller is authenticated here once and the result left in the request state, where the auth
dependency picks it up. Counting is one Redis round trip (`INCRBY` + `EXPIRE` in one script),
which also fetches the key the route reads first when there is one (a cached payment); the
window's reset time is remembered per key, so it is asked of Redis only when this process has
not seen the window start. If Redis fails, requests are let through (and logged): the rate
limiter must not take the API down with it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from limits import RateLimitItem
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from payments_api.errors import AppError, TooManyRequests
from payments_api.middleware.errors import send_error
from payments_api.middleware.request_context import add_response_headers, request_state
from payments_api.utils.logger import get_logger, log_security_event

logger = get_logger("rate-limit")

API_PREFIX = "/api/"


Prefetch = Callable[[Scope], str | None]
"""The Redis key a request's route will read first, if any (fetched with the count)."""


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, item: RateLimitItem, prefetch: Prefetch | None = None):
        self.app = app
        self.item = item
        self.limit = str(item.amount).encode()
        self.prefetch = prefetch

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            return self.app(scope, receive, send)  # handed on: no frame of ours beneath
        return self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = scope["app"].state.services
        identity = await self._identify(scope, services)
        prefetch_key = self.prefetch(scope) if self.prefetch else None
        try:
            count, reset_at, prefetched = await services.rate_limiter.hit(identity, prefetch_key)
        except (RedisError, OSError) as exc:
            logger.warning(
                "rate limiter unavailable; request let through", error=type(exc).__name__
            )
            await self.app(scope, receive, send)
            return
        if prefetch_key:
            request_state(scope)["prefetched"] = {prefetch_key: prefetched}
        now = time.time()
        reset_in = max(1, math.ceil(reset_at - now))
        remaining = max(0, self.item.amount - count)
        headers = [
            (b"ratelimit-limit", self.limit),
            (b"ratelimit-remaining", str(remaining).encode()),
            (b"ratelimit-reset", str(reset_in).encode()),
        ]
        if count > self.item.amount:
            log_security_event("rate limit exceeded", caller=identity, path=scope["path"])
            await send_error(
                scope,
                send,
                TooManyRequests(extra={"retryAfter": reset_in}),
                headers=[*headers, (b"retry-after", str(reset_in).encode())],
            )
            return
        add_response_headers(scope, headers)
        await self.app(scope, receive, send)

    @staticmethod
    async def _identify(scope: Scope, services: Any) -> str:
        """`user:<id>` / `merchant:<id>` for a valid credential, else `ip:<address>`."""
        state = request_state(scope)
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        if authorization:
            try:
                principal = await services.auth.resolve(authorization)
            except AppError:  # no valid credential: the route answers why
                pass
            else:
                state["principal"] = principal
                return f"{principal.kind}:{principal.id}"
        return f"ip:{state.get('client_ip', '')}"
