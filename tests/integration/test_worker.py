"""The worker: `run_loops` delivers events and reconciles until told to stop, and
`payments-api worker` runs them as a process of its own on real servers until SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import MongoClient
from redis import Redis

from payments_api.config.constants import EventType
from payments_api.config.settings import Settings
from payments_api.models.event import Event
from payments_api.models.merchant import Merchant
from payments_api.services.events import STREAM
from payments_api.services.merchants import issue_key
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from payments_api.worker import run_loops
from tests.fixtures.factories import create_merchant, register_user
from tests.fixtures.payments import collection, documents, pay
from tests.fixtures.servers import Receiver, free_port, nx_27017

WAIT_STEPS = 400
"""Bound on every wait loop below (each step sleeps 0.025-0.05 s)."""


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """A short gateway timeout, so an amount ending 408 leaves its payment pending quickly."""
    return make_settings(gateway_timeout_seconds=0.2)


def console_script() -> str:
    script = Path(sys.executable).with_name("payments-api")
    found = str(script) if script.exists() else shutil.which("payments-api")
    assert found, "the `payments-api` console script is not installed"
    return found


def clean_env(**values: str) -> dict[str, str]:
    """The environment without any of the app's settings, plus `values`."""
    names = {
        "APP_ENV",
        "MONGODB_URI",
        "MONGODB_DB",
        "REDIS_URL",
        "GATEWAY_URL",
        "JWT_SECRET",
        "RUN_WORKER",
        "BOOTSTRAP_ADMIN_EMAIL",
        "BOOTSTRAP_ADMIN_PASSWORD",
        "RECONCILE_AFTER_SECONDS",
    }
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(values)
    return env


# --- the command refuses the in-memory stand-ins ---------------------------------------------


def test_worker_without_mongodb_uri_exits_non_zero_with_a_message(
    tmp_path: Path, redis_url: str
) -> None:
    result = subprocess.run(
        [console_script(), "worker"],
        cwd=tmp_path,  # no .env here
        env=clean_env(REDIS_URL=redis_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "MONGODB_URI" in result.stderr


# --- run_loops: in this process, on the app's services ---------------------------------------


async def test_run_loops_delivers_and_reconciles_then_stops_when_asked(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    merchant = await create_merchant(client, webhookUrl=receiver.url)
    user = await register_user(client)
    completed = await pay(client, user, merchant.merchant_id, 10_000)
    pending = await pay(client, user, merchant.merchant_id, 10_408, expect=202)
    # Left pending long ago: old enough for the reconciler with the real clock.
    long_ago = utcnow() - timedelta(seconds=app.state.settings.reconcile_after_seconds * 2)
    await collection(app, "payments").update_one(
        {"_id": pending["paymentId"]}, {"$set": {"createdAt": long_ago, "updatedAt": long_ago}}
    )
    wanted = {completed["paymentId"], pending["paymentId"]}
    stop = asyncio.Event()
    loops = asyncio.create_task(run_loops(app.state.services, stop))
    try:
        for _ in range(WAIT_STEPS):
            delivered = {r.json["data"]["payment"]["paymentId"] for r in receiver.requests}
            if delivered >= wanted or loops.done():
                break
            await asyncio.sleep(0.025)
    finally:
        stop.set()
        await asyncio.wait_for(loops, timeout=10)

    assert loops.exception() is None
    [stored] = await documents(app, "payments", _id=pending["paymentId"])
    assert stored["status"] == "completed"
    bodies = {r.json["data"]["payment"]["paymentId"]: r.json for r in receiver.requests}
    assert set(bodies) == wanted
    assert bodies[pending["paymentId"]]["type"] == "payment.completed"
    assert bodies[pending["paymentId"]]["data"]["payment"]["status"] == "completed"
    assert len(receiver.requests) == 2
    assert loops.done()


# --- `payments-api worker` on real servers ---------------------------------------------------


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def nx_server(tmp_path: Path) -> Iterator[str]:
    """An nx-27017 of this test's own."""
    workdir = tmp_path / "nx"
    workdir.mkdir()
    with nx_27017(workdir, pytest.fail) as uri:
        yield uri


def _seed_event(uri: str, db_name: str, webhook_url: str) -> tuple[str, str]:
    """A merchant with a webhook and one undelivered event, written as the API writes them."""
    now = utcnow()
    merchant_id = ids.merchant_id()
    merchant = Merchant(
        id=merchant_id,
        name="Worker test shop",
        category="food",
        webhook_url=webhook_url,
        webhook_secret="whsec_worker_test",
        api_keys=[issue_key(merchant_id, "default", now).key],
        created_at=now,
        updated_at=now,
    )
    payment_id = ids.payment_id()
    event = Event(
        id=ids.event_id(),
        type=EventType.PAYMENT_COMPLETED,
        payment_id=payment_id,
        merchant_id=merchant.id,
        dedupe_key=f"payment.completed:{payment_id}:",
        data={"payment": {"paymentId": payment_id, "status": "completed", "amount": 5_000}},
        next_attempt_at=now,
        created_at=now,
    )
    client: MongoClient[dict[str, Any]]
    with MongoClient(uri, serverSelectionTimeoutMS=2000) as client:
        db: Any = client[db_name]
        db["merchants"].insert_one(merchant.to_mongo())
        db["events"].insert_one(event.to_mongo())
    return event.id, merchant.webhook_secret


def _log_messages(path: Path) -> list[str]:
    messages = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            messages.append(str(json.loads(line).get("message")))
        except ValueError:
            continue
    return messages


def test_worker_process_on_real_servers_delivers_and_exits_0_on_sigterm(
    tmp_path: Path, nx_server: str, redis_url: str, receiver: Receiver
) -> None:
    db_name = f"worker_{uuid.uuid4().hex[:12]}"
    event_id, _secret = _seed_event(nx_server, db_name, receiver.url)
    log = tmp_path / "worker.log"
    env = clean_env(
        APP_ENV="test",
        LOG_LEVEL="info",
        MONGODB_URI=nx_server,
        MONGODB_DB=db_name,
        REDIS_URL=redis_url,
        # Nothing listens there; the worker needs no gateway unless a payment is pending.
        GATEWAY_URL=f"http://127.0.0.1:{free_port()}",
    )
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [console_script(), "worker"], cwd=tmp_path, env=env, stdout=sink, stderr=sink
        )
    try:
        for _ in range(WAIT_STEPS):
            if "worker loops started" in _log_messages(log) or process.poll() is not None:
                break
            time.sleep(0.05)
        assert "worker loops started" in _log_messages(log), log.read_text()[-3000:]

        for _ in range(WAIT_STEPS):
            if receiver.ids() or process.poll() is not None:
                break
            time.sleep(0.05)
        assert receiver.ids() == [event_id], log.read_text()[-3000:]
        with Redis.from_url(redis_url, decode_responses=True) as redis:
            assert [fields["id"] for _id, fields in redis.xrange(STREAM)] == [event_id]

        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
    finally:
        _stop(process)

    assert returncode == 0, log.read_text()[-3000:]
    assert "worker loops stopped" in _log_messages(log)
    client: MongoClient[dict[str, Any]]
    with MongoClient(nx_server, serverSelectionTimeoutMS=2000) as client:
        stored = client[db_name]["events"].find_one({"_id": event_id})
    assert stored is not None
    assert stored["status"] == "delivered"
