"""The service starts on its defaults and answers its liveness route."""

from __future__ import annotations

import httpx


async def test_health_answers_without_touching_dependencies(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["timestamp"].endswith("Z")
    assert isinstance(body["uptime"], float)
    assert body["memory"]["rss"] > 0
    assert body["version"]
