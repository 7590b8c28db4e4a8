"""Every metric an alert rule or a dashboard query reads is one the app's /metrics exports, so
a renamed metric cannot silently leave an alert that never fires or a panel with no data."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import alert_rules, dashboard_exprs
from tests.deploy.promql import metric_names
from tests.fixtures.payments import open_shop_and_pay

FROM_PROMETHEUS = frozenset({"up"})
"""Series Prometheus makes itself for each target, not the app."""

SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum")}


def exported_names(text: str) -> set[str]:
    """The names of every sample and every declared family (one not yet observed included,
    by the names its samples will have)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


async def scraped_names(client: httpx.AsyncClient) -> set[str]:
    await client.get("/health")
    await open_shop_and_pay(client)
    response = await client.get("/metrics")
    assert response.status_code == 200
    return exported_names(response.text)


async def test_every_metric_an_alert_reads_is_exported(client: httpx.AsyncClient) -> None:
    exported = await scraped_names(client)
    used = {rule["alert"]: metric_names(rule["expr"]) for rule in alert_rules()}
    assert all(used.values()), f"an alert that reads no metric: {used}"
    missing = {
        alert: names - exported - FROM_PROMETHEUS
        for alert, names in used.items()
        if names - exported - FROM_PROMETHEUS
    }
    assert missing == {}


async def test_every_metric_a_dashboard_panel_reads_is_exported(
    client: httpx.AsyncClient,
) -> None:
    exported = await scraped_names(client)
    used = {expr: metric_names(expr) for expr in dashboard_exprs()}
    assert all(used.values()), f"a query that reads no metric: {used}"
    missing = {expr: names - exported for expr, names in used.items() if names - exported}
    assert missing == {}


def test_the_name_reader_keeps_metrics_and_drops_the_rest() -> None:
    """The reader the two tests above rely on: were it to find nothing, they would pass."""
    assert metric_names(
        "histogram_quantile(0.99, sum by (job, le) "
        '(rate(http_request_duration_seconds_bucket{route!~"/health|/ready"}[5m]))) > 0.5'
    ) == {"http_request_duration_seconds_bucket"}
    assert metric_names(
        "max by (job) (oldest_pending_payment_age_seconds) > 5 * max by (job) "
        "(reconcile_after_seconds)"
    ) == {"oldest_pending_payment_age_seconds", "reconcile_after_seconds"}
    assert metric_names(
        'sum(rate(a_total{status=~"5.."}[$__rate_interval])) / on (job) group_left (x) '
        "b_total offset 15m and bool c:recorded unless d"
    ) == {"a_total", "b_total", "c:recorded", "d"}
    assert metric_names('max(delta(webhook_events{status="dead"}[15m])) > 1e3') == {
        "webhook_events"
    }
    assert metric_names("up == 0") == {"up"}
