"""`serve` and `worker` export their traces over OTLP, `http/protobuf` and `grpc`, to a collector
named by OTEL_EXPORTER_OTLP_ENDPOINT (a stand-in one here, tests/fixtures/otlp.py): real
processes on a MongoDB wire server, a redis-server and the sandbox gateway behind its relay.

A payment made through the API arrives as one trace: its request, MongoDB and Redis commands
and the gateway call, naming the payment; the API's access line carries that trace's ids. The
worker's delivery of the payment's event arrives too, naming the payment, with the call to the
merchant's webhook in it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.otlp import Collector, ReceivedSpan, otlp_collector
from tests.fixtures.processes import ProcessStack, open_shop, pay, wait_until
from tests.fixtures.servers import Receiver

SERVER, CLIENT = 2, 3
"""OTLP's span kinds (opentelemetry.proto.trace.v1.Span.SpanKind)."""
EXPORT_SECONDS = 30.0


@pytest.fixture(params=["http/protobuf", "grpc"])
def collector(request: pytest.FixtureRequest) -> Iterator[Collector]:
    with otlp_collector(request.param) as running:
        yield running


def otel_env(collector: Collector) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": collector.protocol,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s rather than 5 s
    }


def db_system(span: ReceivedSpan) -> object:
    return span.attributes.get("db.system.name", span.attributes.get("db.system"))


def url(span: ReceivedSpan) -> str:
    """An HTTP client span's URL (`http.url` in the semantic conventions the packages emit by
    default, `url.full` in the newer ones)."""
    return str(span.attributes.get("url.full", span.attributes.get("http.url", "")))


def spans_where(collector: Collector, role: str, name: str) -> list[ReceivedSpan]:
    return [
        s
        for s in collector.snapshot()
        if s.resource.get("payments_api.role") == role and s.name == name
    ]


def test_serve_and_worker_export_a_payment_and_its_delivery(
    stack: ProcessStack, collector: Collector, receiver: Receiver
) -> None:
    api = stack.api(**otel_env(collector))
    stack.worker(**otel_env(collector))
    with api.client() as http:
        shop = open_shop(http, webhookUrl=receiver.url)
        answer = pay(http, shop.user, shop.merchant.merchant_id, 12_000)
    assert answer.status_code == 201, answer.text
    payment_id = answer.json()["payment"]["paymentId"]

    wait_until(
        lambda: bool(spans_where(collector, "serve", "POST /api/v1/payments")),
        timeout=EXPORT_SECONDS,
        what=f"the payment's request span over {collector.protocol}",
        context=stack.tails,
    )
    [request] = spans_where(collector, "serve", "POST /api/v1/payments")
    assert request.kind == SERVER
    assert request.resource["service.name"] == "payments-api"
    assert request.attributes["payment.id"] == payment_id
    in_trace = [s for s in collector.snapshot() if s.trace_id == request.trace_id]
    assert {db_system(s) for s in in_trace} >= {"mongodb", "redis"}
    [charge] = [s for s in in_trace if s.kind == CLIENT and "/v1/charges" in url(s)]
    assert charge.attributes["payment.id"] == payment_id
    assert charge.parent_span_id == request.span_id

    [line] = [
        r
        for r in api.service.log_records()
        if r.get("message") == "request completed" and r.get("path") == "/api/v1/payments"
    ]
    assert (line["traceId"], line["spanId"]) == (request.trace_id, request.span_id)

    wait_until(
        lambda: bool(spans_where(collector, "worker", "deliver event")),
        timeout=EXPORT_SECONDS,
        what="the worker's delivery span",
        context=stack.tails,
    )
    [delivery] = spans_where(collector, "worker", "deliver event")
    assert delivery.attributes["payment.id"] == payment_id
    calls = [
        s
        for s in collector.snapshot()
        if s.trace_id == delivery.trace_id and s.kind == CLIENT and db_system(s) is None
    ]
    assert [url(c) for c in calls] == [receiver.url]
    assert len(receiver.requests) == 1
