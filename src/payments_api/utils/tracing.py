"""OpenTelemetry traces: off unless an OTLP endpoint is configured.

On (`start_tracing`), a process exports, through the SDK's batch processor and its OTLP exporter
(`http/protobuf` or `grpc`), the spans of OpenTelemetry's own instrumentation: each request (the
ASGI middleware, `middleware/tracing.py`), each MongoDB command (PyMongo's command listener,
which Motor's clients use), each Redis command (redis-py, its cluster client included, with the
arguments replaced by `?`), and each call of the gateway's and the webhooks' httpx clients
(`trace_http_client`: instrumented one by one, because the global instrumentation wraps only
httpx's network transport, not the in-process sandbox's). The worker's units of work — one
payment reconciled, one event delivered — are spans of their own (`payment_span`), so each
one's commands and calls form one trace.

Spans carry the payment they are about as `payment.id`: once a request or a worker step knows
its payment (`tag_payment`), every span started after it in the same context gets the
attribute, and so does the request's own span. Log lines written inside a span carry its
`traceId` and `spanId` (`add_trace_ids`, one of the logger's processors).

Off, nothing of the SDK is imported, no middleware is added, and each hook here returns at its
first test: the hot path does no more than it did before traces existed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import httpx
from opentelemetry import trace
from structlog.typing import EventDict, WrappedLogger

from payments_api import __version__
from payments_api.config.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

PAYMENT_ID = "payment.id"
FLUSH_TIMEOUT_MILLIS = 5_000
_payment_id: ContextVar[str | None] = ContextVar("traced_payment_id", default=None)


class Tracing:
    """The process's tracing while it is on: its provider, and the instrumentation it did."""

    def __init__(self, provider: TracerProvider, instrumentors: list[Any]) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("payments_api", __version__)
        self.instrumentors = instrumentors

    def flush(self) -> None:
        """Export every span ended so far (the batch processor otherwise sends every few
        seconds); bounded, as a process that stops must not hang on a collector."""
        self.provider.force_flush(FLUSH_TIMEOUT_MILLIS)

    def shutdown(self) -> None:
        """Undo the instrumentation and stop exporting (after a last flush)."""
        for instrumentor in self.instrumentors:
            instrumentor.uninstrument()
        self.provider.shutdown()
        global _active
        if _active is self:
            _active = None


_active: Tracing | None = None


def active_tracing() -> Tracing | None:
    return _active


def start_tracing(
    settings: Settings, role: str, exporter: SpanExporter | None = None
) -> Tracing | None:
    """Tracing for this process when `settings` ask for it (None when they do not). Started
    once per process: a later call gets the same. `exporter` replaces the OTLP one (tests
    read spans from the SDK's in-memory exporter); `role` (`serve`, `worker`) tells a
    process's spans apart."""
    global _active
    if _active is not None:
        return _active
    if not settings.tracing_enabled and exporter is None:
        return None
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {
            "service.name": settings.otel_service_name,
            "service.version": __version__,
            "deployment.environment.name": settings.app_env,
            "payments_api.role": role,
        }
    )
    provider = TracerProvider(resource=resource)  # the sampler as OTEL_TRACES_SAMPLER says
    provider.add_span_processor(_payment_id_processor())
    provider.add_span_processor(BatchSpanProcessor(exporter or _otlp_exporter(settings)))
    instrumentors: list[Any] = [PymongoInstrumentor(), RedisInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    _active = Tracing(provider, instrumentors)
    return _active


def _otlp_exporter(settings: Settings) -> SpanExporter:
    """The OTLP exporter of the configured protocol; it reads the other standard variables
    (headers, timeout, compression, certificates) itself."""
    if settings.otlp_traces_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=settings.otlp_traces_endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint)


def _payment_id_processor() -> SpanProcessor:
    from opentelemetry.sdk.trace import SpanProcessor

    class PaymentIdOnSpans(SpanProcessor):
        """Gives every span started while a payment is known its `payment.id`."""

        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            payment_id = _payment_id.get()
            if payment_id is not None:
                span.set_attribute(PAYMENT_ID, payment_id)

        def on_end(self, span: ReadableSpan) -> None:
            return None

    return PaymentIdOnSpans()


def trace_http_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """`client`, its calls traced when tracing is on (its transport wrapped, whichever it is)."""
    if _active is not None:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_active.provider)
    return client


def tag_payment(payment_id: str) -> None:
    """This request's or step's payment: on its current span and on every span after it."""
    if _active is None:
        return
    _payment_id.set(payment_id)
    trace.get_current_span().set_attribute(PAYMENT_ID, payment_id)


@contextmanager
def payment_context(payment_id: str | None) -> Iterator[None]:
    """Within the block, spans started are about `payment_id` (none when None)."""
    token = _payment_id.set(payment_id)
    try:
        yield
    finally:
        _payment_id.reset(token)


@contextmanager
def payment_span(name: str, payment_id: str) -> Iterator[None]:
    """One unit of the worker's work on a payment, as a span of its own (nothing when off)."""
    if _active is None:
        yield
        return
    with (
        payment_context(payment_id),
        _active.tracer.start_as_current_span(name, attributes={PAYMENT_ID: payment_id}),
    ):
        yield


def add_trace_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A structlog processor: the current span's ids on a line written inside one."""
    if _active is not None:
        event_dict.update(trace_ids())
    return event_dict


def trace_ids() -> dict[str, str]:
    """`traceId` and `spanId` of the current span, in the W3C hex form (none outside one)."""
    if _active is None:
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"traceId": format(context.trace_id, "032x"), "spanId": format(context.span_id, "016x")}
