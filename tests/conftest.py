"""Fixtures: a throwaway redis-server for the session, settings, an app per test, a client."""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis import Redis

from payments_api.app import create_app
from payments_api.config.settings import Settings
from payments_api.services import passwords
from payments_api.utils.logger import configure_logging

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-123"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own on a free port (never the machine's 6379)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.exit("redis-server is not installed: run `make test`, which installs it", 2)
    port = _free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.exit("the throwaway redis-server did not start", 2)
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


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
        url: str = request.getfixturevalue("redis_url")
        with Redis.from_url(url) as client:
            client.flushdb()


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
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, client=("203.0.113.7", 50000)),
            base_url="http://testserver",
        ) as http,
    ):
        yield http


class LogCapture:
    """The JSON lines the app logged during a test."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def logs(app: FastAPI, settings: Settings) -> Iterator[LogCapture]:
    """Capture the app's log lines (from after `create_app`, so start-up is captured too)."""
    capture = LogCapture()
    configure_logging(settings.log_level, settings.app_env, stream=capture.stream)
    yield capture
    configure_logging(settings.log_level, settings.app_env)
