"""What the deploy tier reads: the repository's deploy/ files and promtool."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "payments-api.json"
VENV_PROMTOOL = REPO / ".venv" / "tools" / "usr" / "bin" / "promtool"
"""Where `make promtool` unpacks it when it is not on PATH."""


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for panel in dashboard()["panels"]
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool's path; a failure, not a skip, when it is missing: `make test` provides it."""
    found = shutil.which("promtool") or (str(VENV_PROMTOOL) if VENV_PROMTOOL.exists() else None)
    if found is None:
        pytest.fail(
            "promtool is missing (on PATH or at .venv/tools/usr/bin/promtool): run "
            "`make promtool`, which `make test` runs first",
            pytrace=False,
        )
    return found


def run_promtool(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
