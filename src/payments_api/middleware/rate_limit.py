"""Rate limits on `/api/*`: RATE_LIMIT per caller (the user or merchant when the credential is
valid, else the client IP), counted in Redis (`services/rate_limits.py`) so every server
process shares one budget.

The caller is authenticated here once and the result left in the request state, where the auth
dependency picks it up. Counting is one Redis round trip, which also fetches the key the
route reads first when there is one (the caller's cache entry of a payment). If Redis fails,
requests are let through: the rate limiter must not take the API down with it; but it says
so, as an error line once a minute with the number let through uncounted.
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
from payments_api.services.auth import Principal
from payments_api.utils.cache import hash_tag
from payments_api.utils.logger import get_logger, log_security_event

logger = get_logger("rate-limit")

API_PREFIX = "/api/"
UNCOUNTED_REPORT_SECONDS = 60
"""While Redis cannot count, one error line per this many seconds says how many went uncounted."""


Prefetch = Callable[[Scope, str], str | None]
"""The Redis key a request's route will read first for this caller (its id), if any: fetched
with the count, so it must carry the caller's hash tag."""


class UncountedRequests:
    """Requests let through because Redis could not count them, reported once a minute."""

    def __init__(
        self,
        every_seconds: int = UNCOUNTED_REPORT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_seconds = every_seconds
        self.clock = clock
        self.since_report = 0
        self._next_report = -math.inf

    def let_through(self, error: BaseException) -> None:
        self.since_report += 1
        now = self.clock()
        if now < self._next_report:
            return
        logger.error(
            "rate limiter cannot count: requests are let through uncounted",
            error=type(error).__name__,
            uncounted=self.since_report,
        )
        self.since_report = 0
        self._next_report = now + self.every_seconds


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, item: RateLimitItem, prefetch: Prefetch | None = None):
        self.app = app
        self.item = item
        self.limit = str(item.amount).encode()
        self.prefetch = prefetch
        self.uncounted = UncountedRequests()

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            return self.app(scope, receive, send)  # handed on: no frame of ours beneath
        return self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = scope["app"].state.services
        principal = await self._identify(scope, services)
        if principal is None:
            identity = f"ip:{request_state(scope).get('client_ip', '')}"
            prefetch_key = None
        else:
            identity = f"{principal.kind}:{hash_tag(principal.id)}"
            prefetch_key = self.prefetch(scope, principal.id) if self.prefetch else None
        try:
            count, reset_at, prefetched = await services.rate_limiter.hit(identity, prefetch_key)
        except (RedisError, OSError) as exc:
            self.uncounted.let_through(exc)
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
    async def _identify(scope: Scope, services: Any) -> Principal | None:
        """The caller of a valid credential (left in the request state), else None."""
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        if not authorization:
            return None
        try:
            principal: Principal = await services.auth.resolve(authorization)
        except AppError:  # no valid credential: the route answers why
            return None
        request_state(scope)["principal"] = principal
        return principal
