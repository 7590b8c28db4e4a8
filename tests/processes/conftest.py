"""Fixtures of the process tier: a whole stack of real processes per test (see
tests/fixtures/processes.py), stopped afterwards whatever happened; the end of every process's
output is printed when a test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.processes import ProcessStack, process_stack


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def stack_options() -> dict[str, Any]:
    """Keyword arguments of `process_stack` (override in a module for other settings, e.g.
    {"gateway_timeout_seconds": 3, "RECONCILE_AFTER_SECONDS": "5"})."""
    return {}


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, stack_options: dict[str, Any]
) -> Iterator[ProcessStack]:
    with process_stack(tmp_path / "stack", **stack_options) as running:
        yield running
        if request.node.stash.get(_CALL_FAILED, False):
            print(running.tails())  # shown under "Captured stdout teardown"
