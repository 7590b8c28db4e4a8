"""Schemathesis, every check, against a real `payments-api serve` on 127.0.0.1: as a user, a
merchant and an admin, deterministically (a fixed seed, derandomized), with a bounded number of
examples. The description (`/openapi.json`) and the service must agree on every answer.

Two known false positives of the tool are dropped, narrowly, by `schemathesis_hooks.py` (an
integral float such as 1.0 counted as an integer; special-use email domains), with the
contract's state rules (DAILY_LIMIT_EXCEEDED, REFUND_EXCEEDS_AVAILABLE), which no schema can
express.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.fixtures.factories import DEFAULT_PASSWORD
from tests.fixtures.servers import free_port, stop

REPO = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
EXAMPLES_PER_OPERATION = 5
SEED = 20261201
START_SECONDS = 20
RUN_SECONDS = 300
"""Bounds: the server must answer /health within START_SECONDS, each run end within
RUN_SECONDS (a run takes about ten)."""

PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@dataclass(frozen=True)
class Server:
    url: str
    log: Path
    nowhere: str
    """A closed port on 127.0.0.1, as a URL: where webhooks and any other outgoing request of
    the server go, so that nothing leaves the machine."""


@pytest.fixture
def server(tmp_path: Path, redis_url: str) -> Iterator[Server]:
    """`payments-api serve` on a free port of 127.0.0.1 (in-memory MongoDB, the throwaway
    Redis, the in-process sandbox gateway). Its ceilings are the schema's own bounds, so that
    no schema-valid amount is refused by a setting; the rate limit is out of the way."""
    port = free_port()
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("MONGODB_", "GATEWAY_", "SCHEMATHESIS_"))
        and key.lower() not in PROXIES
    }
    env.update(
        APP_ENV="test",
        REDIS_URL=redis_url,
        JWT_SECRET="schemathesis-secret-that-is-long-enough",
        BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
        BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
        RATE_LIMIT="1000000/minute",
        MAX_PAYMENT_AMOUNT=str(10**15),
        DEFAULT_DAILY_LIMIT=str(10**15),
        GATEWAY_TIMEOUT_SECONDS="0.2",
        LOG_LEVEL="warning",
        # Webhook deliveries honour these: any request the hooks did not send to loopback
        # goes to a closed port of 127.0.0.1, never out.
        HTTP_PROXY=nowhere,
        HTTPS_PROXY=nowhere,
        ALL_PROXY=nowhere,
        NO_PROXY="",
    )
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "payments_api", "serve", "--host", "127.0.0.1"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=tmp_path, env=env, stdout=sink, stderr=sink
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        yield Server(url, log, f"{nowhere}/webhooks")
    finally:
        stop(process)


def credentials(url: str) -> dict[str, tuple[str, str]]:
    """The security scheme and the credential of a user, a merchant and the admin."""
    with httpx.Client(base_url=url, timeout=10) as http:

        def token(email: str, password: str) -> str:
            response = http.post("/api/v1/auth/token", json={"email": email, "password": password})
            assert response.status_code == 200, response.text
            value: str = response.json()["accessToken"]
            return value

        user = {"email": "fuzz@example.com", "password": DEFAULT_PASSWORD, "name": "Fuzz"}
        assert http.post("/api/v1/users", json=user).status_code == 201
        admin = token(ADMIN_EMAIL, ADMIN_PASSWORD)
        created = http.post(
            "/api/v1/merchants",
            json={"name": "Fuzz shop", "category": "cafe"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert created.status_code == 201, created.text
        return {
            "user": ("userToken", token(user["email"], user["password"])),
            "merchant": ("merchantKey", created.json()["apiKey"]),
            "admin": ("userToken", admin),
        }


def run_schemathesis(server: Server, scheme: str, credential: str, workdir: Path) -> dict[str, Any]:
    """One deterministic run with every check, authenticated through the security scheme the
    description declares (so the tool knows what a request without it means); its JSON
    report."""
    workdir.mkdir()
    config = workdir / "schemathesis.toml"
    config.write_text(f'[auth.openapi.{scheme}]\nbearer = "${{SCHEMATHESIS_BEARER}}"\n')
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--generation-deterministic",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        "--report",
        "json",
        "--report-dir",
        str(workdir),
    ]
    env = {
        **{key: value for key, value in os.environ.items() if key.lower() not in PROXIES},
        "PYTHONPATH": str(REPO),
        "SCHEMATHESIS_HOOKS": "tests.integration.schemathesis_hooks",
        "SCHEMATHESIS_BEARER": credential,
        "SCHEMATHESIS_WEBHOOK_URL": server.nowhere,
    }
    # In its own directory, with its own schemathesis.toml: no one else's applies.
    result = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=RUN_SECONDS
    )
    (workdir / "output.txt").write_text(result.stdout + result.stderr)
    reports = sorted(workdir.glob("*.json"))
    assert reports, f"schemathesis wrote no report:\n{result.stdout[-3000:]}{result.stderr}"
    report: dict[str, Any] = json.loads(reports[-1].read_text())
    report["output"] = result.stdout
    return report


def test_schemathesis_finds_no_failure_as_a_user_a_merchant_and_an_admin(
    server: Server, tmp_path: Path
) -> None:
    failures: list[str] = []
    outputs = []
    generated = 0
    for role, (scheme, credential) in credentials(server.url).items():
        report = run_schemathesis(server, scheme, credential, tmp_path / role)
        generated += report["test_cases"]["generated"]
        assert report["complete"], report["output"][-3000:]
        assert report["operations"]["tested"] == report["operations"]["total"]
        assert report["errors"] == [], report["output"][-3000:]
        for failure in report["failures"]:
            label = f"{role}: {failure['code']} {failure['title']} {failure.get('operations')}"
            failures.append(label)
            outputs.append(report["output"])

    assert generated > 0
    assert failures == [], "\n\n".join([*failures, *outputs])[-20000:]
