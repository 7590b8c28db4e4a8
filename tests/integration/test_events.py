"""Events and webhooks: the outbox, the Redis stream, signed deliveries to a real local
receiver, retries with backoff until `dead`, leases between dispatchers, the admin routes and
the production URL rule."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.app import create_app
from payments_api.config.settings import Settings
from payments_api.models import event as events_model
from payments_api.services.events import STREAM, EventDispatcher
from payments_api.utils import workers
from payments_api.utils.clock import utcnow
from tests.fixtures.apps import CLIENT_PEER, serve
from tests.fixtures.factories import admin_headers, create_merchant, register_user
from tests.fixtures.payments import (
    cancel,
    collection,
    documents,
    events_of,
    open_shop_and_pay,
    pay,
    refund,
)
from tests.fixtures.races import killed_once_there
from tests.fixtures.servers import Receiver

EVENTS = "/api/v1/events"


class Clock:
    """An injected clock: stands still until moved."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def dispatcher_for(
    app: FastAPI,
    clock: Callable[[], datetime],
    *,
    jitter: Callable[[], float] | None = None,
    worker_id: str = "dispatcher-test",
    webhooks: httpx.AsyncClient | None = None,
) -> EventDispatcher:
    """A dispatcher on the app's own store, Redis and webhook client (or `webhooks`), with an
    injected clock."""
    services = app.state.services
    return EventDispatcher(
        services.settings,
        services.database,
        services.redis,
        webhooks or services.webhooks,
        services.metrics,
        clock=clock,
        jitter=jitter,
        worker_id=worker_id,
    )


class HeldWebhooks(httpx.AsyncBaseTransport):
    """A webhook client's transport that holds every POST before it leaves (`arrived` is set
    then): a delivery can be caught mid-way, deterministically. Nothing is ever sent on."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.arrived.set()
        await asyncio.Event().wait()  # until the task sending it is cancelled
        raise AssertionError("unreachable")


def verifies(signature: str, raw_body: bytes, secret: str) -> bool:
    """The receiver's check, written from the contract: `t=<unix>,v1=<hex HMAC-SHA256>`, with a
    second `v1` during a secret's rotation; the delivery is accepted when any `v1` matches."""
    parts = [part.split("=", 1) for part in signature.split(",")]
    [timestamp] = [value for name, value in parts if name == "t"]
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256
    ).hexdigest()
    return any(hmac.compare_digest(expected, value) for name, value in parts if name == "v1")


async def stream_entries(app: FastAPI) -> list[dict[str, str]]:
    entries = await app.state.services.redis.xrange(STREAM)
    return [dict(fields) for _id, fields in entries]


async def all_events(app: FastAPI, payment_id: str) -> list[dict[str, Any]]:
    found = await documents(app, "events", paymentId=payment_id)
    return sorted(found, key=lambda e: e["createdAt"])


async def list_events(
    client: httpx.AsyncClient, headers: dict[str, str], payment_id: str
) -> list[dict[str, Any]]:
    response = await client.get(EVENTS, params={"paymentId": payment_id}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    listed: list[dict[str, Any]] = body["events"]
    return listed


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- the outbox: one event per change --------------------------------------------------------


async def test_completed_payment_is_delivered_signed_with_the_contract_body(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    admin = await admin_headers(client)
    merchant = await create_merchant(client, admin, webhookUrl=receiver.url)
    other = await create_merchant(client, admin)
    user = await register_user(client)
    payment = await pay(client, user, merchant.merchant_id, 12_000)

    stored = await all_events(app, payment["paymentId"])
    assert [e["type"] for e in stored] == ["payment.completed"]
    event_id = stored[0]["_id"]
    assert event_id.startswith("evt_")
    assert receiver.requests == []  # written in the outbox, not sent by the request

    clock = Clock()
    assert await dispatcher_for(app, clock).run_once() == 1

    [received] = receiver.requests
    assert received.path == "/hooks/payments"
    assert received.answered == 200
    assert received.headers["content-type"] == "application/json"
    body = received.json
    assert set(body) == {"id", "type", "createdAt", "data"}
    assert body["id"] == event_id
    assert body["type"] == "payment.completed"
    assert body["createdAt"].endswith("Z")
    assert body["data"] == {"payment": payment, "sequence": 1, "previousStatus": "pending"}

    signature = received.headers["x-webhook-signature"]
    assert signature.startswith(f"t={int(clock.now.timestamp())},v1=")
    assert verifies(signature, received.body, merchant.webhook_secret)
    assert not verifies(signature, received.body, other.webhook_secret)
    assert not verifies(signature, received.body + b" ", merchant.webhook_secret)

    [entry] = await stream_entries(app)
    assert set(entry) == {"id", "type", "data"}
    assert entry["id"] == event_id
    assert entry["type"] == "payment.completed"
    assert json.loads(entry["data"]) == body["data"]  # the stream carries the same data

    [after] = await all_events(app, payment["paymentId"])
    assert after["status"] == "delivered"
    assert after["published"] is True
    assert await dispatcher_for(app, clock).run_once() == 0
    assert len(receiver.requests) == 1


async def test_declined_payment_produces_payment_failed(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    merchant = await create_merchant(client, webhookUrl=receiver.url)
    user = await register_user(client)
    payment = await pay(client, user, merchant.merchant_id, 10_402, expect=402)

    stored = await all_events(app, payment["paymentId"])
    assert [e["type"] for e in stored] == ["payment.failed"]
    await dispatcher_for(app, Clock()).run_once()
    [received] = receiver.requests
    assert received.json["type"] == "payment.failed"
    assert received.json["data"]["payment"]["status"] == "failed"
    assert received.json["data"]["payment"]["paymentId"] == payment["paymentId"]


async def test_cancel_produces_payment_cancelled(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    assert (await cancel(client, shop.user, payment["paymentId"])).status_code == 200

    stored = await all_events(app, payment["paymentId"])
    assert sorted(e["type"] for e in stored) == ["payment.cancelled", "payment.completed"]
    assert await dispatcher_for(app, Clock()).run_once() == 2
    by_type = {r.json["type"]: r.json for r in receiver.requests}
    assert set(by_type) == {"payment.completed", "payment.cancelled"}
    cancelled = by_type["payment.cancelled"]["data"]["payment"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelReason"] == "Changed my mind"


async def test_each_refund_produces_its_own_payment_refunded(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment = await open_shop_and_pay(client, 10_000, webhookUrl=receiver.url)
    headers = shop.merchant.headers
    assert (await refund(client, headers, payment["paymentId"], 3_000)).status_code == 200
    assert (await refund(client, headers, payment["paymentId"], 2_000)).status_code == 200

    refunded = await events_of(app, payment["paymentId"], "payment.refunded")
    assert len(refunded) == 2
    assert len({e["_id"] for e in refunded}) == 2
    assert len(await events_of(app, payment["paymentId"], "payment.completed")) == 1

    assert await dispatcher_for(app, Clock()).run_once() == 3
    bodies = [r.json for r in receiver.requests if r.json["type"] == "payment.refunded"]
    amounts = sorted(b["data"]["payment"]["refundedAmount"] for b in bodies)
    assert amounts == [3_000, 5_000]
    statuses = {b["data"]["payment"]["status"] for b in bodies}
    assert statuses == {"partially_refunded"}


async def test_merchant_without_webhook_event_is_published_and_delivered_without_deliveries(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    merchant = await create_merchant(client)
    user = await register_user(client)
    payment = await pay(client, user, merchant.merchant_id)

    assert await dispatcher_for(app, Clock()).run_once() == 1

    [event] = await all_events(app, payment["paymentId"])
    assert event["status"] == "delivered"
    assert event["published"] is True
    assert event.get("deliveries", []) == []
    assert [e["id"] for e in await stream_entries(app)] == [event["_id"]]
    assert receiver.connections == 0


# --- failures, retries, dead -----------------------------------------------------------------


async def test_failed_attempt_is_recorded_and_retried_within_30_seconds(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    receiver.fail_first = 1
    clock = Clock()
    dispatcher = dispatcher_for(app, clock)

    assert await dispatcher.run_once() == 1

    [event] = await list_events(client, shop.admin, payment["paymentId"])
    assert event["status"] == "pending"
    [delivery] = event["deliveries"]
    assert delivery["url"] == receiver.url
    assert delivery["status"] == "pending"
    [attempt] = delivery["attempts"]
    assert attempt["statusCode"] == 500
    assert attempt["error"] is None
    assert attempt["durationMs"] >= 0
    next_at = parse_iso(event["nextAttemptAt"])
    assert timedelta(0) < next_at - clock.now <= timedelta(seconds=30)

    clock.now = next_at - timedelta(seconds=1)
    assert await dispatcher.run_once() == 0
    assert len(receiver.requests) == 1

    clock.now = next_at + timedelta(seconds=1)
    assert await dispatcher.run_once() == 1
    assert [r.answered for r in receiver.requests] == [500, 200]
    assert receiver.ids() == [event["eventId"]] * 2

    [event] = await list_events(client, shop.admin, payment["paymentId"])
    assert event["status"] == "delivered"
    assert event["nextAttemptAt"] is None
    [delivery] = event["deliveries"]
    assert delivery["status"] == "delivered"
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 200]
    assert all(a["durationMs"] >= 0 for a in delivery["attempts"])


async def test_retries_back_off_exponentially_then_the_event_is_dead_after_24_hours(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    [stored] = await all_events(app, payment["paymentId"])
    event_id = stored["_id"]
    receiver.fail_first = 10_000
    clock = Clock()
    dispatcher = dispatcher_for(app, clock, jitter=lambda: 1.0)

    delays: list[timedelta] = []
    first_attempt_at = clock.now
    for _ in range(200):  # bounded: 24 h of retries is a few dozen attempts
        assert await dispatcher.run_once() == 1
        event = await events_model.find_by_id(app.state.services.database, event_id)
        assert event is not None
        if event.status != "pending":
            break
        assert clock.now - first_attempt_at < timedelta(hours=24)  # pending until 24 h
        delays.append(event.next_attempt_at - clock.now)
        clock.now = event.next_attempt_at
    else:
        pytest.fail("the event never stopped being retried")

    assert event.status == "dead"
    [delivery] = event.deliveries
    assert delivery.status == "dead"
    assert clock.now - first_attempt_at >= timedelta(hours=24)
    assert len(delivery.attempts) == len(delays) + 1 == len(receiver.requests)
    assert all(a.status_code == 500 for a in delivery.attempts)

    assert timedelta(0) < delays[0] <= timedelta(seconds=30)
    for earlier, later in itertools.pairwise(delays[:6]):
        assert later > earlier  # growing while below any cap
    for earlier, later in itertools.pairwise(delays):
        assert later >= earlier  # never shrinking

    clock.advance(days=2)
    assert await dispatcher.run_once() == 0  # dead events are not retried
    metrics = (await client.get("/metrics")).text
    assert "webhook_events_dead_total 1.0" in metrics

    [listed] = await list_events(client, shop.admin, payment["paymentId"])
    assert listed["status"] == "dead"
    assert listed["deliveries"][0]["status"] == "dead"

    # Redelivery starts over from scratch, whatever the state.
    receiver.fail_first = 0
    response = await client.post(f"{EVENTS}/{event_id}/redeliver", headers=shop.admin)
    assert response.status_code == 202, response.text
    assert await dispatcher.run_once() == 1
    event = await events_model.find_by_id(app.state.services.database, event_id)
    assert event is not None
    assert event.status == "delivered"
    assert [d.status for d in event.deliveries] == ["dead", "delivered"]
    assert len(event.deliveries[1].attempts) == 1


async def test_a_dropped_connection_is_recorded_as_an_error(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    receiver.drop_connection = True

    assert await dispatcher_for(app, Clock()).run_once() == 1

    assert [r.answered for r in receiver.requests] == [None]
    [event] = await list_events(client, shop.admin, payment["paymentId"])
    assert event["status"] == "pending"
    [attempt] = event["deliveries"][0]["attempts"]
    assert attempt["statusCode"] is None
    error = attempt["error"]
    assert isinstance(error, str)
    assert error
    assert issubclass(getattr(httpx, error), httpx.HTTPError)
    assert attempt["durationMs"] >= 0


# --- leases ----------------------------------------------------------------------------------


@pytest.mark.race
async def test_two_dispatchers_deliver_each_event_exactly_once(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    merchant = await create_merchant(client, webhookUrl=receiver.url)
    user = await register_user(client)
    paid = [await pay(client, user, merchant.merchant_id, 1_000 + n) for n in range(6)]
    expected = sorted([(await all_events(app, p["paymentId"]))[0]["_id"] for p in paid])
    receiver.delay = 0.02  # each delivery waits on the network, so the two overlap
    clock = Clock()
    first = dispatcher_for(app, clock, worker_id="dispatcher-a")
    second = dispatcher_for(app, clock, worker_id="dispatcher-b")

    handled = await asyncio.gather(first.run_once(), second.run_once())

    assert sum(handled) == 6
    assert sorted(receiver.ids()) == expected
    assert sorted(e["id"] for e in await stream_entries(app)) == expected
    for event_id in expected:
        [event] = await documents(app, "events", _id=event_id)
        assert event["status"] == "delivered"
        assert len(event["deliveries"][0]["attempts"]) == 1


async def test_a_dead_dispatchers_lease_is_taken_over_only_after_it_expires(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    """A real dispatcher claims the event, with the service's own lease, and dies while its
    webhook call is on the way: another takes the event over once that lease has run out, and
    not a moment before."""
    _, payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    [event] = await documents(app, "events", paymentId=payment["paymentId"])
    # Whole seconds (the store keeps milliseconds), once the event is due.
    claimed_at = (event["nextAttemptAt"] + timedelta(seconds=1)).replace(microsecond=0)
    clock = Clock(claimed_at)
    lease = timedelta(seconds=workers.LEASE_SECONDS)
    assert lease < timedelta(seconds=20)  # the contract: a dead holder's work taken over in 20 s
    db = app.state.services.database
    held_webhooks = HeldWebhooks()
    async with httpx.AsyncClient(transport=held_webhooks) as held_client:
        holder = dispatcher_for(app, clock, worker_id="worker-a", webhooks=held_client)
        # It dies mid-way, its attempt unrecorded and its lease left behind.
        await killed_once_there(holder.run_once(), held_webhooks.arrived, "the first dispatcher")
    left = await events_model.find_by_id(db, event["_id"])  # the service's lease, as left
    assert left is not None
    assert (left.locked_by, left.locked_until) == ("worker-a", claimed_at + lease)
    assert [e["id"] for e in await stream_entries(app)] == [event["_id"]]  # published, once
    survivor = dispatcher_for(app, clock, worker_id="worker-b")

    assert await survivor.run_once() == 0
    clock.now = claimed_at + lease - timedelta(milliseconds=1)
    assert await survivor.run_once() == 0
    assert receiver.connections == 0

    clock.now = claimed_at + lease + timedelta(milliseconds=1)
    assert await survivor.run_once() == 1
    assert receiver.ids() == [event["_id"]]
    assert [e["id"] for e in await stream_entries(app)] == [event["_id"]]  # not published again
    after = await events_model.find_by_id(db, event["_id"])
    assert after is not None
    assert after.status == "delivered"
    assert after.locked_by is None
    [delivery] = after.deliveries
    assert len(delivery.attempts) == 1  # the dead worker's attempt was never recorded
    # The dead worker's late write cannot undo the new holder's work.
    assert not await events_model.update_leased(
        db, event["_id"], "worker-a", {"$set": {"status": "pending"}}
    )


# --- admin routes ----------------------------------------------------------------------------


async def test_admin_lists_a_payments_events_with_deliveries_and_attempts(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    assert (await cancel(client, shop.user, payment["paymentId"])).status_code == 200
    await dispatcher_for(app, Clock()).run_once()

    listed = await list_events(client, shop.admin, payment["paymentId"])

    assert [e["type"] for e in listed] == ["payment.completed", "payment.cancelled"]
    for event in listed:
        assert event["eventId"].startswith("evt_")
        assert event["paymentId"] == payment["paymentId"]
        assert event["merchantId"] == shop.merchant.merchant_id
        assert event["status"] == "delivered"
        assert event["data"]["payment"]["paymentId"] == payment["paymentId"]
        [delivery] = event["deliveries"]
        assert delivery["url"] == receiver.url
        assert delivery["status"] == "delivered"
        [attempt] = delivery["attempts"]
        assert attempt["statusCode"] == 200
        assert attempt["attemptedAt"].endswith("Z")
    assert sorted(receiver.ids()) == sorted(e["eventId"] for e in listed)
    assert await list_events(client, shop.admin, "pay_unknown") == []


async def test_event_list_is_for_admins_and_needs_a_payment_id(
    client: httpx.AsyncClient,
) -> None:
    shop, payment = await open_shop_and_pay(client)

    as_user = await client.get(
        EVENTS, params={"paymentId": payment["paymentId"]}, headers=shop.user.headers
    )
    assert as_user.status_code == 403
    assert as_user.json()["error"] == "FORBIDDEN"
    as_merchant = await client.get(
        EVENTS, params={"paymentId": payment["paymentId"]}, headers=shop.merchant.headers
    )
    assert as_merchant.status_code == 403
    anonymous = await client.get(EVENTS, params={"paymentId": payment["paymentId"]})
    assert anonymous.status_code == 401
    missing = await client.get(EVENTS, headers=shop.admin)
    assert missing.status_code == 422
    assert missing.json()["error"] == "VALIDATION_ERROR"


async def test_redeliver_sends_the_same_event_again(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    clock = Clock()
    dispatcher = dispatcher_for(app, clock)
    assert await dispatcher.run_once() == 1
    [event] = await list_events(client, shop.admin, payment["paymentId"])
    assert event["status"] == "delivered"

    response = await client.post(f"{EVENTS}/{event['eventId']}/redeliver", headers=shop.admin)

    assert response.status_code == 202, response.text
    assert response.json()["success"] is True
    assert response.json()["event"]["eventId"] == event["eventId"]
    assert response.json()["event"]["status"] == "pending"
    clock.now = utcnow()  # the redelivery is due from the moment it was asked for
    assert await dispatcher.run_once() == 1
    assert receiver.ids() == [event["eventId"]] * 2
    first, second = receiver.of(event["eventId"])
    assert first.body == second.body  # the same event, byte for byte
    assert verifies(
        second.headers["x-webhook-signature"], second.body, shop.merchant.webhook_secret
    )
    [event] = await list_events(client, shop.admin, payment["paymentId"])
    assert event["status"] == "delivered"
    assert [d["status"] for d in event["deliveries"]] == ["delivered", "delivered"]
    assert [len(d["attempts"]) for d in event["deliveries"]] == [1, 1]
    assert [e["id"] for e in await stream_entries(app)] == [event["eventId"]] * 2


async def test_redelivering_an_event_mid_retry_leaves_no_delivery_pending(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, payment = await open_shop_and_pay(client, webhookUrl=receiver.url)
    receiver.fail_first = 1
    clock = Clock()
    dispatcher = dispatcher_for(app, clock)
    assert await dispatcher.run_once() == 1
    [event] = await list_events(client, shop.admin, payment["paymentId"])
    assert event["deliveries"][0]["status"] == "pending"  # waiting for its retry

    response = await client.post(f"{EVENTS}/{event['eventId']}/redeliver", headers=shop.admin)
    assert response.status_code == 202, response.text
    clock.now = utcnow()
    assert await dispatcher.run_once() == 1

    [event] = await list_events(client, shop.admin, payment["paymentId"])
    assert event["status"] == "delivered"
    assert event["deliveries"][-1]["status"] == "delivered"
    assert [d["status"] for d in event["deliveries"]].count("pending") == 0


async def test_redeliver_unknown_event_is_404_and_is_for_admins(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    shop, payment = await open_shop_and_pay(client)
    [event] = await all_events(app, payment["paymentId"])

    unknown = await client.post(f"{EVENTS}/evt_does_not_exist/redeliver", headers=shop.admin)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "EVENT_NOT_FOUND"
    as_user = await client.post(f"{EVENTS}/{event['_id']}/redeliver", headers=shop.user.headers)
    assert as_user.status_code == 403
    as_merchant = await client.post(
        f"{EVENTS}/{event['_id']}/redeliver", headers=shop.merchant.headers
    )
    assert as_merchant.status_code == 403
    [unchanged] = await all_events(app, payment["paymentId"])
    assert unchanged["status"] == event["status"]
    assert unchanged.get("deliveries", []) == event.get("deliveries", [])


# --- production: only https URLs to public addresses -----------------------------------------


@pytest.fixture
def production_app(make_settings: Callable[..., Settings]) -> FastAPI:
    return create_app(make_settings(app_env="production", jwt_secret="x" * 32))


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/payments",
        "https://127.0.0.1/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.5/hooks",
        "https://192.168.1.10/hooks",
        "https://[::1]/hooks",
    ],
)
async def test_production_refuses_unsafe_webhook_urls(production_app: FastAPI, url: str) -> None:
    async with serve(production_app, CLIENT_PEER) as client:
        admin = await admin_headers(client)
        response = await client.post(
            "/api/v1/merchants",
            json={"name": "Shop", "category": "food", "webhookUrl": url},
            headers=admin,
        )
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "VALIDATION_ERROR"
        assert [d["field"] for d in body["details"]] == ["webhookUrl"]


@pytest.mark.parametrize(
    "url", ["https://100.100.100.200/latest/meta-data", "https://100.64.0.1/hooks"]
)
async def test_production_refuses_shared_address_space_and_its_metadata_service(
    production_app: FastAPI, url: str
) -> None:
    async with serve(production_app, CLIENT_PEER) as client:
        response = await client.post(
            "/api/v1/merchants",
            json={"name": "Shop", "category": "food", "webhookUrl": url},
            headers=await admin_headers(client),
        )
        assert response.status_code == 422, response.text


async def test_production_accepts_an_https_webhook_on_a_public_address(
    production_app: FastAPI,
) -> None:
    async with serve(production_app, CLIENT_PEER) as client:
        response = await client.post(
            "/api/v1/merchants",
            json={"name": "Shop", "category": "food", "webhookUrl": "https://93.184.216.34/h"},
            headers=await admin_headers(client),
        )
        assert response.status_code == 201, response.text


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_production_dispatcher_refuses_a_stored_loopback_webhook(
    production_app: FastAPI, receiver: Receiver, scheme: str
) -> None:
    async with serve(production_app, CLIENT_PEER) as client:
        admin = await admin_headers(client)
        merchant = await create_merchant(client, admin)
        url = f"{scheme}://127.0.0.1:{receiver.port}/hooks/payments"
        await collection(production_app, "merchants").update_one(
            {"_id": merchant.merchant_id}, {"$set": {"webhookUrl": url}}
        )
        user = await register_user(client)
        payment = await pay(client, user, merchant.merchant_id)

        assert await dispatcher_for(production_app, Clock()).run_once() == 1

        assert receiver.connections == 0
        [event] = await list_events(client, admin, payment["paymentId"])
        assert event["status"] == "pending"
        [delivery] = event["deliveries"]
        assert delivery["url"] == url
        [attempt] = delivery["attempts"]
        assert attempt["statusCode"] is None
        assert "refused" in attempt["error"]
        assert event["published"] is True  # the stream still gets it


# --- a rotated webhook secret: both sign during its grace period -----------------------------


async def rotate_webhook_secret(app: FastAPI, merchant_id: str, expires_at: datetime) -> str:
    """Put the merchant in a rotation as the rotation route leaves it: a new current secret, the
    old one kept until `expires_at`. The new secret."""
    merchants = collection(app, "merchants")
    stored = await merchants.find_one({"_id": merchant_id})
    new_secret = f"whsec_{secrets.token_hex(24)}"
    await merchants.update_one(
        {"_id": merchant_id},
        {
            "$set": {
                "webhookSecret": new_secret,
                "previousWebhookSecret": stored["webhookSecret"],
                "previousWebhookSecretExpiresAt": expires_at,
            }
        },
    )
    return new_secret


def hmac_of(secret: str, timestamp: str, raw_body: bytes) -> str:
    return hmac.new(
        secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256
    ).hexdigest()


async def test_during_a_rotation_a_delivery_is_signed_with_the_new_secret_and_the_old(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver
) -> None:
    shop, _ = await open_shop_and_pay(client, webhookUrl=receiver.url)
    old_secret = shop.merchant.webhook_secret
    other = await create_merchant(client, shop.admin)
    clock = Clock()
    new_secret = await rotate_webhook_secret(
        app, shop.merchant.merchant_id, clock.now + timedelta(hours=24)
    )

    assert await dispatcher_for(app, clock).run_once() == 1

    [received] = receiver.requests
    signature = received.headers["x-webhook-signature"]
    timestamp = str(int(clock.now.timestamp()))
    assert signature == (
        f"t={timestamp},v1={hmac_of(new_secret, timestamp, received.body)}"
        f",v1={hmac_of(old_secret, timestamp, received.body)}"
    )
    assert verifies(signature, received.body, new_secret)  # a receiver already on the new one
    assert verifies(signature, received.body, old_secret)  # one not yet switched over
    assert not verifies(signature, received.body, other.webhook_secret)
    assert not verifies(signature, received.body + b" ", new_secret)
    assert not verifies(signature, received.body + b" ", old_secret)


@pytest.mark.parametrize(
    ("after", "signers"),
    [(timedelta(hours=24) - timedelta(seconds=1), 2), (timedelta(hours=24), 1)],
    ids=["a-second-before-expiry", "at-expiry"],
)
async def test_once_the_old_secret_has_expired_only_the_new_one_signs(
    client: httpx.AsyncClient, app: FastAPI, receiver: Receiver, after: timedelta, signers: int
) -> None:
    shop, _ = await open_shop_and_pay(client, webhookUrl=receiver.url)
    old_secret = shop.merchant.webhook_secret
    clock = Clock()
    new_secret = await rotate_webhook_secret(
        app, shop.merchant.merchant_id, clock.now + timedelta(hours=24)
    )
    clock.now += after

    assert await dispatcher_for(app, clock).run_once() == 1

    [received] = receiver.requests
    signature = received.headers["x-webhook-signature"]
    assert signature.startswith(f"t={int(clock.now.timestamp())},")
    assert signature.count("v1=") == signers
    assert verifies(signature, received.body, new_secret)
    assert verifies(signature, received.body, old_secret) is (signers == 2)
