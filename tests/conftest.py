"""Fixtures: a throwaway redis-server for the session, settings, an app per test, a client,
the app's log lines and a webhook receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from payments_api.app import create_app
from payments_api.config.settings import Settings
from payments_api.services import passwords
from tests.fixtures.apps import CLIENT_PEER, LogCapture, capture_logs, serve
from tests.fixtures.servers import Receiver, abort_session, flush_redis, redis_server

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


@pytest.fixture(autouse=True)
def _flush_redis(request: pytest.FixtureRequest) -> None:
    """Each test starts with an empty Redis (only when the test uses the real one)."""
    if "redis_url" in request.fixturenames:
        flush_redis(request.getfixturevalue("redis_url"))


@pytest.fixture
def make_settings(redis_url: str) -> Callable[..., Settings]:
    """Settings for a test app: the real throwaway Redis, in-memory MongoDB, a bootstrap admin."""

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
