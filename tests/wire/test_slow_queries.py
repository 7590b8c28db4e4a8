"""The slow-query listener on a real driver connection: with SLOW_QUERY_MS=0 every command is
"slow", and its warning names the command but carries none of the command's values."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from payments_api.config.settings import Settings
from tests.fixtures.apps import LogCapture

EMAIL = "slow-query-person@example.com"


@pytest.fixture
def wire_settings(wire_make_settings: Callable[..., Settings]) -> Settings:
    return wire_make_settings(slow_query_ms=0)


async def test_a_slow_command_is_logged_by_name_without_its_values(
    wire_logs: LogCapture, wire_client: httpx.AsyncClient, wire_settings: Settings
) -> None:
    response = await wire_client.post(
        "/api/v1/users",
        json={"email": EMAIL, "password": "correct-horse-battery", "name": "Slow Query"},
    )
    assert response.status_code == 201

    slow = [record for record in wire_logs.records if record.get("message") == "slow query"]
    commands = {(record["command"], record["database"]) for record in slow}
    # Start-up's `hello` on admin and `createIndexes`, the registration's `insert` of the user:
    assert ("hello", "admin") in commands, commands
    assert ("createIndexes", wire_settings.mongodb_db) in commands, commands
    assert ("insert", wire_settings.mongodb_db) in commands, commands
    for record in slow:
        assert record["level"] == "warning"
        assert record["thresholdMs"] == 0
        assert record["durationMs"] >= 0
        assert EMAIL not in str(record)
        assert "correct-horse-battery" not in str(record)
