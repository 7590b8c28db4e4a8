"""Fixtures of the wire tier: the app on a MongoDB reached over the wire protocol.

The server is `MONGODB_TEST_URI` when it is set (a real MongoDB), else an nx-27017 (a MongoDB
wire-protocol server on SQLite, a `dev` dependency) started here for the session on a free port
with `--db memory`. Every test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from payments_api.app import create_app
from payments_api.config.settings import Settings
from payments_api.services.registry import Services
from payments_api.utils.logger import configure_logging
from tests.conftest import LogCapture, _free_port

START_SECONDS = 20


@dataclass(frozen=True)
class WireServer:
    uri: str
    transactions: bool
    """Whether the server runs multi-document transactions (the app then runs with `on`)."""
    nx: bool
    """True for the nx-27017 started here, False for `MONGODB_TEST_URI`."""


def _start_nx(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    if importlib.util.find_spec("nx_27017") is None:
        pytest.exit(
            "nx-27017 is not installed: run `make test` (or pip install -e '.[dev]'), "
            "or set MONGODB_TEST_URI to a MongoDB",
            2,
        )
    port = _free_port()
    output = workdir / "nx-27017.out"
    command = [
        sys.executable,
        "-c",
        "import sys; from nx_27017 import main; sys.exit(main())",
        "--db",
        "memory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # Its own pid and log files: the defaults are shared paths in /tmp.
        "--pid-file",
        str(workdir / "nx-27017.pid"),
        "--log-file",
        str(workdir / "nx-27017.log"),
    ]
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    return process, f"mongodb://127.0.0.1:{port}/"


def _wait_for_ping(uri: str, process: subprocess.Popen[bytes] | None, workdir: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250) as client:
        while True:
            try:
                client.admin.command("ping")
                return
            except PyMongoError as exc:
                exited = process is not None and process.poll() is not None
                if exited or time.monotonic() > deadline:
                    if process is not None:
                        process.kill()
                        process.wait()
                        output = (workdir / "nx-27017.out").read_text(errors="replace")
                        pytest.exit(
                            f"nx-27017 did not answer ping at {uri} ({type(exc).__name__}); "
                            f"its output:\n{output[-2000:]}",
                            2,
                        )
                    pytest.exit(f"MONGODB_TEST_URI={uri} did not answer ping: {exc}", 2)
                time.sleep(0.05)


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
    workdir = tmp_path_factory.mktemp("nx-27017")
    external = os.environ.get("MONGODB_TEST_URI", "").strip()
    if external:
        _wait_for_ping(external, None, workdir)
        yield WireServer(external, _runs_transactions(external), nx=False)
        return
    process, uri = _start_nx(workdir)
    try:
        _wait_for_ping(uri, process, workdir)
        yield WireServer(uri, _runs_transactions(uri), nx=True)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "mongodb_uri": wire_server.uri,
            "mongodb_db": wire_db_name,
            "mongodb_transactions": "on" if wire_server.transactions else "off",
        }
        values.update(overrides)
        return make_settings(**values)

    return factory


@pytest.fixture
def wire_settings(wire_make_settings: Callable[..., Settings]) -> Settings:
    return wire_make_settings()


@pytest.fixture
def wire_app(wire_settings: Settings) -> FastAPI:
    return create_app(wire_settings)


@pytest.fixture
async def wire_client(wire_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        LifespanManager(wire_app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, client=("203.0.113.7", 50000)),
            base_url="http://testserver",
        ) as http,
    ):
        yield http


@pytest.fixture
def wire_services(wire_app: FastAPI, wire_client: httpx.AsyncClient) -> Services:
    """The started app's services (its `database` is the app's own Motor client)."""
    services: Services = wire_app.state.services
    return services


@pytest.fixture
def wire_logs(wire_app: FastAPI, wire_settings: Settings) -> Iterator[LogCapture]:
    """The wire app's log lines, from after `create_app` (so start-up is captured too)."""
    capture = LogCapture()
    configure_logging(wire_settings.log_level, wire_settings.app_env, stream=capture.stream)
    yield capture
    configure_logging(wire_settings.log_level, wire_settings.app_env)
