"""Prometheus metrics, one registry per app so tests can build many apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method, route template and status code.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.payments = Counter(
            "payments_total",
            "Payment attempts by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.authorizations = Counter(
            "payment_authorizations_total",
            "Manual-capture payments by step: authorized, captured, voided (by a cancel) and "
            "expired (voided by the worker).",
            ["outcome"],
            registry=self.registry,
        )

        self.events_delivered = Counter(
            "webhook_events_delivered_total",
            "Events delivered to webhooks.",
            registry=self.registry,
        )
        self.events_failed = Counter(
            "webhook_attempts_failed_total", "Failed webhook attempts.", registry=self.registry
        )
        self.events_dead = Counter(
            "webhook_events_dead_total",
            "Events given up on after retrying for 24 h.",
            registry=self.registry,
        )
        self.reconciled = Counter(
            "reconciled_payments_total",
            "Pending payments settled by reconciliation, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.late_charges_refunded = Counter(
            "late_charges_refunded_total",
            "Charges that landed after their payment had failed, found and refunded.",
            registry=self.registry,
        )
        self.oldest_pending_age = Gauge(
            "oldest_pending_payment_age_seconds",
            "Age of the oldest payment still pending (0 when none).",
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One request. Its two children are looked up once per label set and kept: the
        labels are bounded (a route template, a status code, the methods the server parses)."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
