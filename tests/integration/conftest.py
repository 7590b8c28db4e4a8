"""Fixtures shared by the integration tests' modules (the app and its client are the root
conftest's)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    """The app's /openapi.json."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document
