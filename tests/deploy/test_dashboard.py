"""deploy/grafana and the compose profile that runs it: the dashboard parses and shows the four
groups an operator needs, and the files the `observability` profile mounts exist and agree with
each other (the data source's uid, the dashboards' path). Not run: there is no Docker engine
where the tests run; this reads the files only."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from tests.deploy.conftest import DASHBOARD, DEPLOY, REPO, dashboard, load_yaml

GROUPS = {
    "Requests": ("http_requests_total", "http_request_duration_seconds_bucket"),
    "Payments": ("payments_total",),
    "Pending payments": ("oldest_pending_payment_age_seconds",),
    "Webhook deliveries": ("webhook_events",),
}
"""Each row the dashboard must have, and a metric its panels must read."""


def rows() -> dict[str, list[dict[str, Any]]]:
    """The dashboard's panels under each row's title."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] | None = None
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            current = grouped.setdefault(panel["title"], [])
        else:
            assert current is not None, f"panel {panel['title']!r} before any row"
            current.append(panel)
    return grouped


def test_the_dashboard_has_the_four_groups_each_reading_its_metrics() -> None:
    grouped = rows()
    for title, metrics in GROUPS.items():
        assert grouped.get(title), f"no panels under the row {title!r}"
        exprs = " ".join(t["expr"] for panel in grouped[title] for t in panel["targets"])
        for metric in metrics:
            assert metric in exprs, f"{title}: no panel reads {metric}"


def test_request_panels_show_rate_and_p50_and_p99_by_route() -> None:
    exprs = [t["expr"] for panel in rows()["Requests"] for t in panel["targets"]]
    assert any("rate(http_requests_total" in e and "by (route)" in e for e in exprs)
    for quantile in ("0.5", "0.99"):
        assert any(
            f"histogram_quantile({quantile}," in e and "by (route, le)" in e for e in exprs
        ), f"no p{quantile} latency by route"


def test_every_panel_uses_the_provisioned_data_source() -> None:
    [source] = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")["datasources"]
    panels = [panel for panel in dashboard()["panels"] if panel["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert {t["datasource"]["uid"] for t in panel["targets"]} == {source["uid"]}
    assert source["url"] == "http://prometheus:9090"


def test_the_observability_profile_mounts_files_that_exist() -> None:
    compose = load_yaml(REPO / "docker-compose.yml")
    services = compose["services"]
    mounted: dict[str, str] = {}
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"]
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts the missing {source}"
                mounted[target] = source
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
    assert mounted["/etc/prometheus/alerts.yml"] == "./deploy/prometheus/alerts.yml"
    [provider] = load_yaml(DEPLOY / "grafana/provisioning/dashboards/payments-api.yml")["providers"]
    dashboards = mounted[provider["options"]["path"]]
    assert (REPO / dashboards / DASHBOARD.name).exists()
    assert PurePosixPath(
        services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    ).parent == PurePosixPath(provider["options"]["path"])
