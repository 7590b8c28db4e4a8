"""Fixtures: a throwaway redis-server for the session, settings, an app per test, a client,
the app's log lines and a webhook receiver; and the backends a `race` test runs on."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from redis import Redis

from payments_api.app import create_app
from payments_api.config.settings import Settings
from payments_api.services import passwords
from tests.fixtures.apps import CLIENT_PEER, LogCapture, capture_logs, running, serve
from tests.fixtures.races import (
    NX_ANSWERS,
    RACE_BACKEND,
    RACE_BACKENDS,
    RaceBackend,
    interleaved,
    nx_gaps_shown,
    over_the_wire,
    share_one_deployment,
)
from tests.fixtures.servers import (
    Receiver,
    SyncRedisClient,
    abort_session,
    flush_redis,
    redis_server,
)

pytest_plugins = ["tests.fixtures.wire"]

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-123"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own on a free port (never the machine's 6379)."""
    with redis_server(tmp_path_factory.mktemp("redis"), abort_session) as server:
        yield server.url


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    """Argon2id with its smallest cost: the suite hashes hundreds of passwords, and the
    production cost (~0.1-0.3 s each) would dominate its run time. Still real Argon2id."""
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_HASHER", fast)
        patch.setattr(passwords, "_DUMMY_HASH", fast.hash("dummy password"))
        yield


@pytest.fixture
def redis_nodes(redis_url: str) -> tuple[str, ...]:
    """The URL of every node of the test's Redis: one here, each master in `tests/cluster`."""
    return (redis_url,)


@pytest.fixture
def forget_redis(redis_url: str) -> Callable[[], None]:
    """Forget every key of the test's Redis (as a Redis restarted without persistence);
    `tests/cluster` forgets them on every node of its cluster."""
    return functools.partial(flush_redis, redis_url)


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[SyncRedisClient]:
    """A client of the test's own (not the app's) on the test's Redis, to look at keys."""
    with Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


@pytest.fixture(autouse=True)
def _flush_redis(request: pytest.FixtureRequest) -> None:
    """Each test starts with an empty Redis (only when the test uses the real one)."""
    if "redis_url" in request.fixturenames:
        request.getfixturevalue("forget_redis")()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked `race` runs once on each backend of `RACE_BACKENDS`."""
    if metafunc.definition.get_closest_marker("race") is not None:
        if "race_backend" not in metafunc.fixturenames:
            metafunc.fixturenames.append("race_backend")
        metafunc.parametrize("race_backend", RACE_BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def _race_backend_first(request: pytest.FixtureRequest) -> None:
    """A `race` test sets its backend up before any app is made."""
    if request.node.get_closest_marker("race") is not None:
        request.getfixturevalue("race_backend")


@pytest.fixture
def race_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> RaceBackend:
    """The backend of a `race` test; every app the test starts shares its database and one
    sandbox gateway. On nx-27017, a test marked `nx_gap(Gap, ...)` is a strict xfail that
    accepts only those gaps (`tests/fixtures/races.py`)."""
    name: str = request.param
    if name == "wire":
        backend = over_the_wire(
            request.getfixturevalue("wire_server"), request.getfixturevalue("wire_db_name")
        )
        gap = request.node.get_closest_marker("nx_gap")
        if backend.on_nx and gap is not None:
            reason = "; ".join(" ".join(str(kind.__doc__).split()) for kind in gap.args)
            request.applymarker(pytest.mark.xfail(reason=reason, raises=gap.args, strict=True))
        NX_ANSWERS.clear()
    else:
        backend = interleaved(int(name.rsplit("-", 1)[1]))
    share_one_deployment(backend, monkeypatch)
    request.node.stash[RACE_BACKEND] = backend
    return backend


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """A race test that fails on nx-27017 where the emulator showed one of its known gaps
    fails as that gap (an `NxGap`), which its `nx_gap` xfail may accept (see `race_backend`)."""
    try:
        return (yield)
    except Exception as failure:
        backend = item.stash.get(RACE_BACKEND, None)
        gaps = nx_gaps_shown(backend) if backend is not None else []
        marker = item.get_closest_marker("nx_gap")
        accepted = tuple(marker.args) if marker is not None else ()
        gaps.sort(key=lambda gap: not isinstance(gap, accepted))
        if gaps:
            raise gaps[0] from failure
        raise


@pytest.fixture
def make_settings(
    redis_url: str, request: pytest.FixtureRequest, _race_backend_first: None
) -> Callable[..., Settings]:
    """Settings for a test app: the real throwaway Redis, in-memory MongoDB, a bootstrap admin
    (in a `race` test: the race backend's database)."""
    backend = request.node.stash.get(RACE_BACKEND, None)

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "app_env": "test",
            "redis_url": redis_url,
            "jwt_secret": "test-secret-that-is-long-enough-for-hs256",
            "bootstrap_admin_email": ADMIN_EMAIL,
            "bootstrap_admin_password": ADMIN_PASSWORD,
            "allowed_origins": ["https://shop.example.com"],
            "log_level": "debug",
        }
        if backend is not None:
            values.update(backend.settings)
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app, CLIENT_PEER) as http:
        yield http


@pytest.fixture
async def twin(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A second app on the same settings (in a `race` test: the same database and sandbox
    gateway), started and stopped with the test: another process of the deployment."""
    async with running(settings, CLIENT_PEER) as started:
        yield started


@pytest.fixture
def logs(app: FastAPI, settings: Settings) -> Iterator[LogCapture]:
    """Capture the app's log lines (from after `create_app`, so start-up is captured too)."""
    with capture_logs(settings) as capture:
        yield capture


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1, recording every POST it is sent."""
    server = Receiver()
    server.start()
    try:
        yield server
    finally:
        server.stop()
