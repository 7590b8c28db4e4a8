"""Prometheus metrics, one registry per app so tests can build many apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from payments_api.utils.optional_gauge import OptionalGauge

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
        self._scrape_gauges()

    def _scrape_gauges(self) -> None:
        """What the API reads afresh on each scrape (services/operational_gauges.py), so that
        every process shows the deployment's state, whichever process did the work: the
        worker (`payments-api worker`) serves no /metrics, and each of `serve --workers N`
        has a registry of its own. The database's figures are left out of a scrape whose
        queries failed (OptionalGauge) rather than shown stale."""
        self.oldest_pending_age = OptionalGauge(
            "oldest_pending_payment_age_seconds",
            "Age of the oldest payment still pending (0 when none), read from the database; "
            "absent when it could not be read.",
            registry=self.registry,
        )
        self.webhook_events = OptionalGauge(
            "webhook_events",
            "Events now in a delivery status, read from the database: pending (awaiting "
            "delivery or a retry) and dead (given up on; until redelivered). Absent when it "
            "could not be read.",
            ["status"],
            registry=self.registry,
        )
        self.database_gauges_fresh = Gauge(
            "database_gauges_fresh",
            "1 when this scrape read the database's figures (oldest pending payment, webhook "
            "events), 0 when a query failed or timed out and they were left out.",
            registry=self.registry,
        )
        self.dependency_ready = Gauge(
            "dependency_ready",
            "1 when the dependency passes the check GET /ready makes, else 0.",
            ["dependency"],
            registry=self.registry,
        )
        self.reconcile_after = Gauge(
            "reconcile_after_seconds",
            "The RECONCILE_AFTER_SECONDS setting: how long a payment stays pending before the "
            "reconciler settles it.",
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
