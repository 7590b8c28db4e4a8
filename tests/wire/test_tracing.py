"""Traces, read from the SDK's in-memory exporter: a payment is one trace — its request, the
MongoDB commands (over the wire: PyMongo's listener sees no in-memory stand-in), the Redis
commands and the gateway call — each span naming the payment, and the request's log lines
carry the trace's ids. The worker's webhook delivery is a trace of its own about the same
payment. With no OTLP endpoint set, nothing is traced."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from payments_api.app import create_app
from payments_api.config.settings import Settings
from payments_api.utils import tracing
from payments_api.utils.tracing import PAYMENT_ID, Tracing, start_tracing
from tests.fixtures.apps import CLIENT_PEER, capture_logs, serve
from tests.fixtures.payments import open_shop, pay
from tests.fixtures.servers import Receiver

COLLECTOR = "http://127.0.0.1:9/otlp"
"""An endpoint that turns tracing on; nothing listens (spans go to the in-memory exporter)."""


@pytest.fixture
def traced(
    wire_make_settings: Callable[..., Settings],
) -> Iterator[tuple[Settings, Tracing, InMemorySpanExporter]]:
    settings = wire_make_settings(otel_exporter_otlp_endpoint=COLLECTOR)
    exporter = InMemorySpanExporter()
    started = start_tracing(settings, role="serve", exporter=exporter)
    assert started is not None
    try:
        yield settings, started, exporter
    finally:
        started.shutdown()
    assert tracing.active_tracing() is None


def system(span: ReadableSpan) -> Any:
    attributes = span.attributes or {}
    return attributes.get("db.system.name", attributes.get("db.system"))


def url(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    return str(attributes.get("url.full", attributes.get("http.url", "")))


def about(span: ReadableSpan) -> Any:
    return (span.attributes or {}).get(PAYMENT_ID)


async def test_a_payment_is_one_trace_of_its_request_mongodb_redis_and_gateway_calls(
    traced: tuple[Settings, Tracing, InMemorySpanExporter],
) -> None:
    settings, started, exporter = traced
    app = create_app(settings)
    async with serve(app, CLIENT_PEER) as client:
        shop = await open_shop(client)
        started.flush()
        exporter.clear()
        with capture_logs(settings) as logs:
            payment = await pay(client, shop.user, shop.merchant.merchant_id, 12_000)
        started.flush()
        spans = exporter.get_finished_spans()  # before the app's shutdown adds its own
    payment_id = payment["paymentId"]

    [request] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert request.name == "POST /api/v1/payments"
    assert about(request) == payment_id
    assert request.parent is None
    trace_id = request.context.trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}  # one trace, nothing outside it

    mongodb = [s for s in spans if system(s) == "mongodb"]
    redis = [s for s in spans if system(s) == "redis"]
    gateway = [s for s in spans if s.kind is SpanKind.CLIENT and "/v1/charges" in url(s)]
    assert mongodb, "no MongoDB command was traced"
    assert redis, "no Redis command was traced"
    assert gateway, "the gateway call was not traced"
    assert all(s.parent and s.parent.span_id == request.context.span_id for s in gateway)
    # Every span from the moment the payment exists names it: the insert, the charge, the rest.
    inserts = [s for s in mongodb if s.name.endswith(".insert")]
    assert inserts
    assert all(about(s) == payment_id for s in inserts)
    assert all(about(s) == payment_id for s in gateway)

    access = [r for r in logs.records if r.get("message") == "request completed"]
    [line] = [r for r in access if r["path"] == "/api/v1/payments"]
    assert line["traceId"] == format(trace_id, "032x")
    assert line["spanId"] == format(request.context.span_id, "016x")
    business = [r for r in logs.records if r.get("paymentId") == payment_id and r is not line]
    assert business
    assert all(r.get("traceId") == format(trace_id, "032x") for r in business)


async def test_a_webhook_delivery_is_a_trace_about_its_payment(
    traced: tuple[Settings, Tracing, InMemorySpanExporter], receiver: Receiver
) -> None:
    settings, started, exporter = traced
    app = create_app(settings)
    async with serve(app, CLIENT_PEER) as client:
        shop = await open_shop(client, webhookUrl=receiver.url)
        payment = await pay(client, shop.user, shop.merchant.merchant_id, 12_000)
        started.flush()
        exporter.clear()
        assert await app.state.services.dispatcher.run_once() == 1
    started.flush()
    assert len(receiver.requests) == 1

    spans = exporter.get_finished_spans()
    [delivery] = [s for s in spans if s.name == "deliver event"]
    assert about(delivery) == payment["paymentId"]
    [call] = [s for s in spans if s.kind is SpanKind.CLIENT and url(s) == receiver.url]
    assert call.context.trace_id == delivery.context.trace_id
    assert about(call) == payment["paymentId"]
    # The merchant's server can join the trace: the call carried its context.
    assert receiver.requests[0].headers["traceparent"].split("-")[1] == format(
        delivery.context.trace_id, "032x"
    )


async def test_without_an_endpoint_nothing_is_traced_and_no_line_names_a_trace(
    wire_make_settings: Callable[..., Settings],
) -> None:
    settings = wire_make_settings()
    assert not settings.tracing_enabled
    app: FastAPI = create_app(settings)
    assert tracing.active_tracing() is None
    async with serve(app, CLIENT_PEER) as client:
        with capture_logs(settings) as logs:
            response: httpx.Response = await client.get("/ready")
    assert response.status_code == 200
    assert logs.records
    assert not any("traceId" in r for r in logs.records)
    assert "traceparent" not in response.headers
