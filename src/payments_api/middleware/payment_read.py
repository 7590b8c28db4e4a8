"""GET /api/v1/payments/{paymentId} answered at the edge when the answer is already in hand.

This is the hottest route: clients poll it until a payment settles. The rate limiter has by
then authenticated the caller and, in its one Redis round trip, fetched the payment's cache
entry. When that entry is there and the caller is the payment's own user or merchant, the
cached JSON is the whole answer, so it is sent from here, without routing, dependency
injection or response objects. Every other case — a cache miss, an admin, anyone else, a bad
credential — goes on to the route (routes/api/v1/payments.py → controllers → services), which
gives the same answer the long way.
"""

from __future__ import annotations

from collections.abc import Awaitable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from payments_api.controllers.cached_read import ROUTE_TEMPLATE, envelope
from payments_api.middleware.request_context import request_state
from payments_api.services.auth import Principal
from payments_api.services.payment_reads import is_payer_or_payee
from payments_api.utils.cache import versioned_payload

_HEADERS = [(b"content-type", b"application/json")]


class CachedPaymentReadMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        body = None
        if scope["type"] == "http" and scope["method"] == "GET":
            body = self._cached_answer(scope)
        if body is None:
            return self.app(scope, receive, send)  # handed on: no frame of ours beneath
        return self._send(send, body)

    @staticmethod
    async def _send(send: Send, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _cached_answer(scope: Scope) -> bytes | None:
        state = request_state(scope)
        prefetched = state.get("prefetched")
        principal = state.get("principal")
        if not isinstance(prefetched, dict) or not isinstance(principal, Principal):
            return None
        payload = versioned_payload(next(iter(prefetched.values()), None))
        if payload is None:
            return None
        owners = orjson.loads(payload)
        if not is_payer_or_payee(principal, owners["userId"], owners["merchantId"]):
            return None
        state["userId" if principal.kind == "user" else "merchantId"] = principal.id
        state["route_template"] = ROUTE_TEMPLATE
        return envelope(payload)
