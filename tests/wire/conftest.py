"""Fixtures of the wire tier: the app on a MongoDB reached over the wire protocol (the server
and the per-test database are `tests/fixtures/wire.py`'s, shared with the race tests)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI

from payments_api.app import create_app
from payments_api.config.settings import Settings
from payments_api.services.registry import Services
from tests.fixtures.apps import CLIENT_PEER, LogCapture, capture_logs, serve
from tests.fixtures.wire import WireServer


@pytest.fixture
def wire_make_settings(
    make_settings: Callable[..., Settings], wire_server: WireServer, wire_db_name: str
) -> Callable[..., Settings]:
    """Like `make_settings`, on the wire server: transactions `on` where the server runs
    them, else `off` (steps then run without a session)."""

    return functools.partial(
        make_settings,
        mongodb_uri=wire_server.uri,
        mongodb_db=wire_db_name,
        mongodb_transactions="on" if wire_server.transactions else "off",
    )


@pytest.fixture
def wire_settings(wire_make_settings: Callable[..., Settings]) -> Settings:
    return wire_make_settings()


@pytest.fixture
def wire_app(wire_settings: Settings) -> FastAPI:
    return create_app(wire_settings)


@pytest.fixture
async def wire_client(wire_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(wire_app, CLIENT_PEER) as http:
        yield http


@pytest.fixture
def wire_services(wire_app: FastAPI, wire_client: httpx.AsyncClient) -> Services:
    """The started app's services (its `database` is the app's own Motor client)."""
    services: Services = wire_app.state.services
    return services


@pytest.fixture
def wire_logs(wire_app: FastAPI, wire_settings: Settings) -> Iterator[LogCapture]:
    """The wire app's log lines, from after `create_app` (so start-up is captured too)."""
    with capture_logs(wire_settings) as capture:
        yield capture
