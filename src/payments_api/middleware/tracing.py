"""The request's span, when tracing is on (utils/tracing.py).

OpenTelemetry's ASGI middleware is outermost, so the span covers everything the edge does too.
Inside it, `RequestSpanMiddleware` gives the span what the ASGI middleware cannot know when it
starts it: the payment in the path and, by the answer's start, the route's template as its
name (`POST /api/v1/payments`, never the raw path, so span names stay few). Off, neither is in
the stack."""

from __future__ import annotations

import re
from typing import Any

from opentelemetry import trace
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from payments_api.middleware.logging import route_template
from payments_api.middleware.request_context import request_state
from payments_api.utils.tracing import Tracing, payment_context

PAYMENT_PATH = re.compile(r"^/api/v1/payments/(pay_[0-9A-HJKMNP-TV-Z]{26})(?:/|$)")
"""A path naming one payment; only a well-formed id, so no client text becomes an attribute."""


def _span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The span's name until the route is known: the method alone (the raw path is unbounded)."""
    return str(scope.get("method", "HTTP")), {}


class RequestSpanMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span = trace.get_current_span()
        match = PAYMENT_PATH.match(scope["path"])
        payment_id = match[1] if match else None
        if payment_id is not None:
            span.set_attribute("payment.id", payment_id)

        async def send_naming_span(message: Message) -> None:
            # At the answer's start: the span ends with its last byte, before this layer does.
            if message["type"] == "http.response.start":
                template = route_template(scope, request_state(scope))
                span.update_name(f"{scope['method']} {template}")
                span.set_attribute("http.route", template)
            await send(message)

        with payment_context(payment_id):
            await self.app(scope, receive, send_naming_span)


def tracing_middleware(tracing: Tracing | None) -> list[Middleware]:
    """The layers that trace each request, outermost first (none when tracing is off)."""
    if tracing is None:
        return []
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return [
        Middleware(
            OpenTelemetryMiddleware,
            tracer_provider=tracing.provider,
            default_span_details=_span_details,
            exclude_spans=["receive", "send"],
        ),
        Middleware(RequestSpanMiddleware),
    ]
