"""What one approved create costs in MongoDB commands and Redis round trips (issue 12), so that
a change that adds one fails here, naming every command the request sent.

`POST /api/v1/payments` by a user with an Idempotency-Key, approved by the sandbox (201
`completed`), on the wire tier (mongomock sends no command events):
- MongoDB: every command the app's own Motor client starts, seen by a `CommandListener` given
  to that client at its construction (`Database._make_client` builds it; the test hands
  Motor's constructor one more listener).
- Redis: every round trip the app's own pool makes to the real redis-server, seen by its
  connections (a class of the pool's own, counting each request it writes: a pipeline or a
  script call is one). The rate limiter's count in the middleware and `limits`' own reads
  share that pool, so the whole request is counted.

Only the counted request's own work counts. A payment made first takes the one-time work of a
fresh app out of the way (connections and their handshakes, the first run of each Lua script,
the rate-limit window), and the user and the merchant are read just before the counted request,
as a caller that paid a moment ago finds them (services/credentials.py trusts them
TRUST_SECONDS; a request arriving later costs one `find` more for each). Left out as not the
request's work: the driver's own `hello`, `isMaster`, `ping` and `endSessions`, and a Redis
connection's upkeep (`HELLO`, `CLIENT SETINFO`, `SELECT`, `AUTH` as it connects, the `PING`
of a health check). A request slower than a third of the idempotency lock's TTL would also
renew its lock (an `EVALSHA idem:lock:…` in the list): a machine that slow is the failure to
look at.

Both transaction settings run where the server runs transactions: `on` (production; the tier's
nx-27017 runs one transaction at a time, which is all one request needs) costs the same as
`off` (the race tier's on nx-27017, a standalone mongod's) plus its `commitTransaction`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from motor import motor_asyncio
from pymongo import monitoring

from payments_api.config.settings import Settings
from payments_api.services import registry
from payments_api.services.registry import Services
from tests.fixtures.apps import CLIENT_PEER, running
from tests.fixtures.factories import create_merchant, register_user
from tests.fixtures.payments import payment_body, post_payment
from tests.fixtures.wire import WireServer

APPROVED_AMOUNT = 1000
"""The sandbox approves every amount but those ending in 402, 408, 503 and 409."""

MAX_COMMANDS = {"off": 7, "on": 8}
"""By MONGODB_TRANSACTIONS: `on` sends `commitTransaction` on top. The seven are the writes of
the create and of its completion step (services/payment_steps.py): the payment, the hold, the
draft event, the ledger record, the compare-and-set, the event's publication and the user's
totals. Nothing is read first: the unique index answers for the key, and the payer and the
merchant are as the credential check read them (services/credentials.py, trusted TRUST_SECONDS,
so the test reads both just before the counted request)."""
MAX_ROUND_TRIPS = 4

DRIVER_COMMANDS = frozenset({"hello", "ismaster", "ping", "endsessions"})
CONNECTION_UPKEEP = frozenset({"HELLO", "CLIENT", "SELECT", "AUTH", "PING"})


@dataclass
class Counted:
    """What the app sent while `on`: MongoDB commands as (name, collection) and Redis round
    trips as the (name, key) of each command they carried."""

    on: bool = False
    commands: list[tuple[str, str]] = field(default_factory=list)
    round_trips: list[list[tuple[str, str]]] = field(default_factory=list)

    def report(self) -> str:
        commands = "".join(f"\n  {name} {on}".rstrip() for name, on in self.commands)
        trips = "".join(
            "\n  " + "; ".join(f"{name} {key}" for name, key in trip) for trip in self.round_trips
        )
        return (
            f"MongoDB commands ({len(self.commands)}):{commands}\n"
            f"Redis round trips ({len(self.round_trips)}):{trips}"
        )


class CommandCounter(monitoring.CommandListener):
    def __init__(self, counted: Counted) -> None:
        self.counted = counted

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.counted.on and event.command_name.lower() not in DRIVER_COMMANDS:
            collection = event.command.get(event.command_name)
            self.counted.commands.append(
                (event.command_name, collection if isinstance(collection, str) else "")
            )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


def resp_commands(packed: bytes) -> list[list[bytes]]:
    """The commands of a RESP request as redis-py writes it (arrays of bulk strings)."""
    commands: list[list[bytes]] = []
    at = 0
    while at < len(packed):
        end = packed.index(b"\r\n", at)
        count, at = int(packed[at + 1 : end]), end + 2
        parts: list[bytes] = []
        for _ in range(count):
            end = packed.index(b"\r\n", at)
            size = int(packed[at + 1 : end])
            parts.append(packed[end + 2 : end + 2 + size])
            at = end + 2 + size + 2
        commands.append(parts)
    return commands


def named(command: list[bytes]) -> tuple[str, str]:
    """A command's name and the key it is about (a script's first key)."""
    name = command[0].decode().upper()
    if name in {"EVAL", "EVALSHA"}:
        key = command[3] if len(command) > 3 and command[2] != b"0" else b""
    else:
        key = command[1] if len(command) > 1 else b""
    return name, key.decode(errors="replace")


def counting(connection_class: type[Any], counted: Counted) -> type[Any]:
    """The pool's connection class, counting each request it writes while `counted.on`."""

    class CountingConnection(connection_class):  # type: ignore[misc, valid-type]
        async def send_packed_command(
            self, command: bytes | str | Iterable[bytes], check_health: bool = True
        ) -> None:
            if counted.on:
                chunks = [command.encode()] if isinstance(command, str) else command
                packed = chunks if isinstance(chunks, bytes) else b"".join(map(bytes, chunks))
                trip = [named(parts) for parts in resp_commands(packed)]
                if any(name not in CONNECTION_UPKEEP for name, _ in trip):
                    counted.round_trips.append(trip)
            await super().send_packed_command(command, check_health)

    return CountingConnection


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counted:
    """Counters on the Motor client and the Redis pool of the apps the test starts."""
    counted = Counted()
    listener = CommandCounter(counted)
    motor_client = motor_asyncio.AsyncIOMotorClient
    create_redis = registry.create_redis

    def listened(*args: Any, event_listeners: Iterable[Any] = (), **kwargs: Any) -> Any:
        return motor_client(*args, event_listeners=[*event_listeners, listener], **kwargs)

    def counted_redis(settings: Settings) -> Any:
        client = create_redis(settings)
        pool = client.connection_pool
        pool.connection_class = counting(pool.connection_class, counted)
        return client

    monkeypatch.setattr(motor_asyncio, "AsyncIOMotorClient", listened)
    monkeypatch.setattr(registry, "create_redis", counted_redis)
    return counted


@pytest.mark.parametrize("transactions", ["on", "off"])
async def test_an_approved_create_stays_within_its_commands_and_round_trips(
    counted: Counted,
    wire_make_settings: Callable[..., Settings],
    wire_server: WireServer,
    transactions: str,
) -> None:
    if transactions == "on" and not wire_server.transactions:
        pytest.skip("this MongoDB runs no transactions")
    settings = wire_make_settings(mongodb_transactions=transactions)
    async with running(settings, CLIENT_PEER) as (app, client):
        services: Services = app.state.services
        assert services.database.supports_transactions is (transactions == "on")
        user = await register_user(client)
        merchant = await create_merchant(client)
        body = payment_body(merchant.merchant_id, APPROVED_AMOUNT)
        warm_up = await post_payment(client, user, body, "warm-up")
        assert warm_up.status_code == 201, warm_up.text
        await services.auth.credentials.user_is_active(user.user_id)
        await services.auth.credentials.merchant(merchant.merchant_id)

        counted.on = True
        response = await post_payment(client, user, body, "counted")
        counted.on = False

    assert response.status_code == 201, response.text
    assert response.json()["payment"]["status"] == "completed"
    seen = counted.report()
    assert ("insert", "payments") in counted.commands, f"the counters saw nothing?\n{seen}"
    commands, round_trips = len(counted.commands), len(counted.round_trips)
    assert commands <= MAX_COMMANDS[transactions], seen
    assert round_trips <= MAX_ROUND_TRIPS, seen
