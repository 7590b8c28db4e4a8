"""The app's writes are acknowledged by a majority and its reads come from the primary, and its
transactions read a snapshot and commit with `w: majority` (config/database.py), as sent on the
wire: seen by a `CommandListener` on the app's own Motor client (`wire_commands`).

A MongoDB sends no `$readPreference` to a replica set's primary, so the read preference is
checked on the client and on what the app gave Motor's constructor (pymongo's default is primary
too: only the latter would notice the setting gone). A URI asking for less is overridden
(pymongo lets a keyword argument win over the URI) and the start-up warns of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pymongo import ReadPreference
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from payments_api.config.database import TRANSACTION_SETTINGS, Database, describe_uri
from payments_api.config.settings import Settings
from payments_api.services.registry import Services
from tests.fixtures.apps import capture_logs
from tests.fixtures.factories import create_merchant, register_user
from tests.fixtures.payments import payment_body, post_payment
from tests.fixtures.wire import WireServer
from tests.wire.conftest import CommandLog

APPROVED_AMOUNT = 10_000
"""The sandbox approves amounts ending in 000."""

WRITES = frozenset({"insert", "update", "delete", "findAndModify"})
MAJORITY = {"w": "majority"}


def _in_transaction(command: dict[str, Any]) -> bool:
    """A command of a transaction carries its `txnNumber` and `autocommit: false` (a retryable
    write outside one carries only the `txnNumber`)."""
    return "txnNumber" in command and command.get("autocommit") is False


def _with_options(uri: str, options: str) -> str:
    return f"{uri}{'&' if '?' in uri else '?'}{options}"


async def test_the_apps_client_writes_with_majority_and_reads_from_the_primary(
    recorded_services: Services, wire_commands: CommandLog, wire_client: httpx.AsyncClient
) -> None:
    client = recorded_services.database.client
    user = await register_user(wire_client)
    merchant = await create_merchant(wire_client)
    request = payment_body(merchant.merchant_id, APPROVED_AMOUNT)
    paid = await post_payment(wire_client, user, request)
    assert paid.status_code == 201, paid.text

    assert client.write_concern.document == MAJORITY
    assert client.read_preference == ReadPreference.PRIMARY
    given = wire_commands.constructions[-1]
    assert (given.get("w"), given.get("readPreference")) == ("majority", "primary")
    assert "payments" in {body["insert"] for body in wire_commands.named("insert")}
    alone = [
        (name, body)
        for name, body in wire_commands.commands
        if name in WRITES and not _in_transaction(body)
    ]
    weaker = [(name, body[name], body.get("writeConcern")) for name, body in alone]
    assert alone
    assert all(body.get("writeConcern") == MAJORITY for _, body in alone), weaker
    commits = wire_commands.named("commitTransaction")
    assert all(body.get("writeConcern") == MAJORITY for body in commits), commits


async def test_a_transaction_reads_a_snapshot_and_commits_with_majority(
    recorded_services: Services, wire_commands: CommandLog, wire_server: WireServer
) -> None:
    if not wire_server.transactions:
        assert not wire_server.nx, "the tier's own nx-27017 always ran transactions"
        pytest.skip(f"MONGODB_TEST_URI={describe_uri(wire_server.uri)} runs no transactions")
    database = recorded_services.database
    assert database.supports_transactions is True
    options = TRANSACTION_SETTINGS
    assert options.read_concern == ReadConcern("snapshot")
    assert options.write_concern == WriteConcern("majority")
    assert options.read_preference == ReadPreference.PRIMARY
    wire_commands.commands.clear()

    async with database.transaction() as session:
        await database["write_concern_probe"].insert_one({"_id": "one"}, session=session)
        await database["write_concern_probe"].find_one({"_id": "one"}, session=session)

    sent = [(name, body) for name, body in wire_commands.commands if _in_transaction(body)]
    assert [name for name, _ in sent] == ["insert", "find", "commitTransaction"], sent
    first, commit = sent[0][1], sent[-1][1]
    assert first.get("startTransaction") is True
    assert first.get("readConcern") == {"level": "snapshot"}, first
    assert commit.get("writeConcern") == MAJORITY, commit


async def test_a_uri_asking_for_weaker_writes_or_secondary_reads_is_overridden_and_said_so(
    make_settings: Callable[..., Settings], wire_server: WireServer, wire_db_name: str
) -> None:
    uri = _with_options(wire_server.uri, "W=1&readpreference=secondaryPreferred&wTimeoutMS=4000")
    settings = make_settings(mongodb_uri=uri, mongodb_db=wire_db_name)
    database = Database(settings)
    try:
        with capture_logs(settings) as logs:
            await database.connect()
        assert database.client.write_concern.document == {**MAJORITY, "wtimeout": 4000}
        assert database.client.read_preference == ReadPreference.PRIMARY
    finally:
        database.close()
    [warning] = [r for r in logs.records if r["message"].startswith("MONGODB_URI options")]
    assert warning["level"] == "warning"
    assert warning["options"] == ["w", "readPreference"]
