"""Fixtures of the wire tier: the app on a MongoDB reached over the wire protocol.

The server is `MONGODB_TEST_URI` when it is set (a real MongoDB), else an nx-27017 (a MongoDB
wire-protocol server on SQLite, a `dev` dependency) started here for the session on a free port
with `--db memory`. Every test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from payments_api.app import create_app
from payments_api.config.settings import Settings
from payments_api.services.registry import Services
from tests.fixtures.apps import CLIENT_PEER, LogCapture, capture_logs, serve
from tests.fixtures.servers import abort_session, nx_27017, wait_for_ping


@dataclass(frozen=True)
class WireServer:
    uri: str
    transactions: bool
    """Whether the server runs multi-document transactions (the app then runs with `on`)."""
    nx: bool
    """True for the nx-27017 started here, False for `MONGODB_TEST_URI`."""


def _runs_transactions(uri: str) -> bool:
    """A replica set or mongos does; anything else when it accepts a read in a transaction."""
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri, serverSelectionTimeoutMS=2000) as client:
        hello: dict[str, Any] = client.admin.command("hello")
        if "setName" in hello or hello.get("msg") == "isdbgrid":
            return True
        try:
            with client.start_session() as session, session.start_transaction():
                client["wire_probe"]["probe"].find_one({}, session=session)
                session.abort_transaction()
        except OperationFailure:
            return False
        return True


@pytest.fixture(scope="session")
def wire_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WireServer]:
    external = os.environ.get("MONGODB_TEST_URI", "").strip()
    if external:
        wait_for_ping(external, abort_session, label="MONGODB_TEST_URI")
        yield WireServer(external, _runs_transactions(external), nx=False)
        return
    with nx_27017(tmp_path_factory.mktemp("nx-27017"), abort_session) as uri:
        yield WireServer(uri, _runs_transactions(uri), nx=True)


@pytest.fixture(scope="session")
def wire_mongo(wire_server: WireServer) -> Iterator[MongoClient[dict[str, Any]]]:
    """A plain synchronous client for the fixtures' own housekeeping."""
    client: MongoClient[dict[str, Any]]
    with MongoClient(wire_server.uri, serverSelectionTimeoutMS=2000) as client:
        yield client


@pytest.fixture
def wire_db_name(wire_mongo: MongoClient[dict[str, Any]]) -> Iterator[str]:
    """A database of the test's own, dropped afterwards."""
    name = f"wire_{uuid.uuid4().hex[:16]}"
    yield name
    wire_mongo.drop_database(name)


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
