"""Fixtures of the wire tier: the app on a MongoDB reached over the wire protocol (the server
and the per-test database are `tests/fixtures/wire.py`'s, shared with the race tests)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from motor import motor_asyncio
from pymongo import monitoring

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


@dataclass
class CommandLog(monitoring.CommandListener):
    """What the Motor clients made during the test were given and sent: the keyword arguments
    of each construction, and every command started (name and body, as it went on the wire)."""

    constructions: list[dict[str, Any]] = field(default_factory=list)
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None

    def named(self, *names: str) -> list[dict[str, Any]]:
        return [body for name, body in self.commands if name in names]


@pytest.fixture
def wire_commands(monkeypatch: pytest.MonkeyPatch) -> CommandLog:
    """A `CommandLog` handed to every Motor client made from now on (`Database._make_client`
    builds the app's; the fixture hands Motor's constructor one more listener)."""
    log = CommandLog()
    motor_client = motor_asyncio.AsyncIOMotorClient

    def listened(*args: Any, event_listeners: Iterable[Any] = (), **kwargs: Any) -> Any:
        log.constructions.append(kwargs)
        return motor_client(*args, event_listeners=[*event_listeners, log], **kwargs)

    monkeypatch.setattr(motor_asyncio, "AsyncIOMotorClient", listened)
    return log


@pytest.fixture
def recorded_services(wire_commands: CommandLog, wire_services: Services) -> Services:
    """`wire_services`, of an app whose Motor client `wire_commands` records (made after it:
    the log holds the indexes the app's start-up created)."""
    assert wire_commands.named("createIndexes"), "the app's client was made before the log"
    return wire_services
