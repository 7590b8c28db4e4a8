"""deploy/prometheus: the alert rules pass `promtool check rules` and their unit tests
(`promtool test rules`: each alert fires on a series that should fire it and stays silent on
one just under its threshold), the Prometheus config passes `promtool check config`, and every
rule carries what an operator reads when it fires, its runbook an existing README heading."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import (
    ALERTS,
    ALERTS_TEST,
    PROMETHEUS_CONFIG,
    REPO,
    alert_rules,
    dashboard_exprs,
    load_yaml,
    run_promtool,
)

ALERTS_SECTION = "### Alerts"


def test_promtool_checks_the_rules(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules_pass(promtool: str) -> None:
    result = run_promtool(promtool, "test", "rules", ALERTS_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_stays_silent() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for case in load_yaml(ALERTS_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts no unit test fires"
    assert names - silent == set(), "alerts no unit test holds silent"


def test_promtool_checks_the_prometheus_config(promtool: str) -> None:
    result = run_promtool(promtool, "check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Each query as a recording rule (Grafana's `$__rate_interval` as 5m), so promtool parses
    it the way Prometheus will."""
    rules = [
        {"record": f"dashboard:query_{n}", "expr": expr.replace("$__rate_interval", "5m")}
        for n, expr in enumerate(dashboard_exprs())
    ]
    assert rules
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}),
        encoding="utf-8",
    )
    result = run_promtool(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_says_what_happened_and_where_its_runbook_is(rule: dict[str, Any]) -> None:
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook"} <= set(annotations)
    assert annotations["runbook"] == f"README.md#{rule['alert'].lower()}"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    alerts = readme.split(ALERTS_SECTION, 1)[1]
    alerts = re.split(r"^#{1,3} ", alerts, maxsplit=1, flags=re.MULTILINE)[0]
    assert re.search(rf"^#### {rule['alert']}$", alerts, re.MULTILINE), (
        f"README's {ALERTS_SECTION} has no heading for {rule['alert']}"
    )
