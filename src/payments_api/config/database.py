"""The one MongoDB client: Motor on `MONGODB_URI`, or the in-memory stand-in without it.

Also: how the client writes and reads (`CLIENT_SETTINGS`, `TRANSACTION_SETTINGS`), the
`transaction()` helper, the slow-query listener, and making the indexes of `config/indexes.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pymongo import ReadPreference
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import Primary
from pymongo.uri_parser import split_options
from pymongo.write_concern import WriteConcern

from payments_api.config.constants import SERVER_WAIT_SECONDS
from payments_api.config.indexes import INDEXES, RETIRED_INDEXES
from payments_api.config.settings import Settings
from payments_api.errors import StartupError
from payments_api.utils.logger import get_logger

logger = get_logger("database")

TRANSACTION_PROBE = "transaction_probe"
"""The collection `connect()` reads in a transaction (never written) to test `on`."""

Session = Any
"""A Motor client session, or None where the deployment has no transactions."""


class SlowQueryListener(CommandListener):
    """Logs every command slower than `SLOW_QUERY_MS` as a warning (name and timing only:
    command bodies can hold personal data)."""

    def __init__(self, threshold_ms: int) -> None:
        self.threshold_ms = threshold_ms

    def started(self, event: CommandStartedEvent) -> None:
        return None

    def succeeded(self, event: CommandSucceededEvent) -> None:
        self._check(event.command_name, event.database_name, event.duration_micros)

    def failed(self, event: CommandFailedEvent) -> None:
        self._check(event.command_name, event.database_name, event.duration_micros)

    def _check(self, command: str, database: str, duration_micros: int) -> None:
        duration_ms = duration_micros / 1000
        if duration_ms >= self.threshold_ms:
            logger.warning(
                "slow query",
                command=command,
                database=database,
                durationMs=round(duration_ms, 1),
                thresholdMs=self.threshold_ms,
            )


def uri_option_names(uri: str) -> set[str]:
    """The options `uri` names, lower case (MongoDB's option names are case-insensitive). Its
    options are what follows the first `?`, as pymongo reads them; an SRV or TXT lookup is
    not made (a TXT record may set only authSource, replicaSet and loadBalanced)."""
    options = uri.partition("?")[2]
    if not options:
        return set()
    return {name.lower() for name in split_options(options, validate=False, normalize=False)}


CLIENT_SETTINGS: dict[str, Any] = {"w": "majority", "readPreference": "primary"}
"""What the Motor client is always given, whatever `MONGODB_URI` says.

`w: majority`: a write acknowledged by the primary alone can be rolled back when that member
fails over before a majority has it, and a payment, refund or ledger record the caller was
told of would then be gone. `readPreference: primary`: every read the service makes can
decide something (a compare-and-set's expectation, an idempotency replay, a refund bound), and
a secondary may answer with a state older than the last acknowledged write.

pymongo lets a keyword argument win over the same option in the URI (the MongoClient
docstring: "If the same option is passed in a URI and as a keyword parameter the keyword
parameter takes precedence"): a `?w=1` or `?readPreference=secondary` in the URI is
overridden, and the start-up says so in a warning (`overridden_uri_options`). Whether money
may be acknowledged before it is durable is not a connection-string setting. The URI's other
options (`wTimeoutMS`, `journal`, …) still apply."""


def overridden_uri_options(uri: str) -> list[str]:
    """The options of `uri` that CLIENT_SETTINGS override."""
    named = uri_option_names(uri)
    return [name for name in CLIENT_SETTINGS if name.lower() in named]


@dataclass(frozen=True, slots=True)
class TransactionSettings:
    """The options every transaction is started with (`Database.transaction`)."""

    read_concern: ReadConcern
    write_concern: WriteConcern
    read_preference: Primary


TRANSACTION_SETTINGS = TransactionSettings(
    read_concern=ReadConcern("snapshot"),
    write_concern=WriteConcern("majority"),
    read_preference=ReadPreference.PRIMARY,
)
"""Read concern `snapshot`: every read of a step sees one point in time, the one its writes
commit on top of. Write concern `majority`: a commit acknowledged once a majority has it, which
a failover cannot roll back. Read preference primary (pymongo allows no other in a
transaction)."""


def describe_uri(uri: str) -> str:
    """The URI without credentials, for messages and logs."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return "<invalid uri>"
    hosts = rest.rsplit("@", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    return f"{scheme}://{hosts}"


class Database:
    """Owns the client, the database handle and what the deployment supports."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.in_memory = settings.mongodb_uri is None
        self.client: Any = self._make_client(settings)
        self.db: Any = self.client[settings.mongodb_db]
        self.supports_transactions = False

    @staticmethod
    def _make_client(settings: Settings) -> Any:
        if settings.mongodb_uri is None:
            from mongomock_motor import AsyncMongoMockClient

            return AsyncMongoMockClient(tz_aware=True)
        from motor.motor_asyncio import AsyncIOMotorClient

        return AsyncIOMotorClient(
            settings.mongodb_uri,
            **CLIENT_SETTINGS,
            tz_aware=True,
            serverSelectionTimeoutMS=2000,
            connectTimeoutMS=2000,
            socketTimeoutMS=10_000,
            event_listeners=[SlowQueryListener(settings.slow_query_ms)],
            appname="payments-api",
        )

    def __getitem__(self, name: str) -> Any:
        return self.db[name]

    async def connect(self, wait_seconds: float = SERVER_WAIT_SECONDS) -> None:
        """Wait for the server (at most `wait_seconds`), then learn whether it has transactions."""
        if self.in_memory:
            logger.info("using the in-memory MongoDB stand-in (mongomock); data is not persisted")
            return
        uri = describe_uri(self.settings.mongodb_uri or "")
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                hello: dict[str, Any] = await self.client.admin.command("hello")
                break
            except PyMongoError as exc:
                if time.monotonic() >= deadline:
                    raise StartupError(
                        f"MongoDB at {uri} could not be reached within {wait_seconds:g} s: "
                        f"{type(exc).__name__}"
                    ) from exc
                await asyncio.sleep(0.5)
        replica = "setName" in hello or hello.get("msg") == "isdbgrid"
        mode = self.settings.mongodb_transactions
        if mode == "on" and not replica and not await self._accepts_transactions():
            raise StartupError(
                f"MONGODB_TRANSACTIONS=on but MongoDB at {uri} refuses transactions "
                "(it is neither a replica set nor mongos)"
            )
        self.supports_transactions = mode == "on" or (mode == "auto" and replica)
        overridden = overridden_uri_options(self.settings.mongodb_uri or "")
        if overridden:
            logger.warning(
                "MONGODB_URI options overridden: writes are acknowledged by a majority and "
                "read from the primary",
                options=overridden,
            )
        logger.info("connected to MongoDB", uri=uri, transactions=self.supports_transactions)

    async def _accepts_transactions(self) -> bool:
        """Whether a server whose `hello` names no replica set still runs transactions (a
        wire-compatible server may; a standalone mongod refuses): one read inside a
        transaction, then aborted, so nothing is written."""
        try:
            async with await self.client.start_session() as session:
                self._start_transaction(session)
                try:
                    await self.db[TRANSACTION_PROBE].find_one({}, session=session)
                finally:
                    await session.abort_transaction()
        except PyMongoError:
            return False
        return True

    async def ping(self) -> None:
        await self.client.admin.command("ping")

    async def create_indexes(self) -> None:
        for collection, indexes in INDEXES.items():
            if self.in_memory:
                # mongomock's create_indexes drops options such as partialFilterExpression;
                # its create_index keeps them.
                for index in indexes:
                    options = {k: v for k, v in index.document.items() if k != "key"}
                    await self.db[collection].create_index(
                        list(index.document["key"].items()), **options
                    )
            else:
                await self.db[collection].create_indexes(indexes)

    async def drop_retired_indexes(self) -> None:
        for collection, names in RETIRED_INDEXES.items():
            existing = {index["name"] async for index in self.db[collection].list_indexes()}
            for name in names:
                if name in existing:
                    try:
                        await self.db[collection].drop_index(name)
                    except OperationFailure:  # another process dropped it first
                        logger.info("retired index already dropped", index=name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """Group the writes of one step. Yields a session to pass as `session=` to every Motor
        call inside, or None where the deployment has no transactions (each step is then
        made safe by deterministic ids and guarded updates instead). Its options are
        TRANSACTION_SETTINGS: snapshot, majority, primary."""
        if not self.supports_transactions:
            yield None
            return
        async with await self.client.start_session() as session, self._start_transaction(session):
            yield session

    def _start_transaction(self, session: Any) -> Any:
        options = TRANSACTION_SETTINGS
        return session.start_transaction(
            read_concern=options.read_concern,
            write_concern=options.write_concern,
            read_preference=options.read_preference,
        )

    def close(self) -> None:
        self.client.close()
