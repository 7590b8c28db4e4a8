"""Every hot query of the service is read from the index meant for it, and one that asks for an
order gets it from that index (its plan has no in-memory SORT stage).

Each query is the one the service's own code sends: the test runs the model function (or the
service, or the reconciler's whole pass) on a seeded database, takes the command the app's
Motor client sent from a `CommandListener` on it (`wire_commands`), and has the server explain
that very command (`queryPlanner`). So a change to a filter, a sort or an index is caught
here, with no query copied into the test.

nx-27017 plans with SQLite, not with MongoDB's index bounds, and says so: it answers `explain`
of a find with SQLite's EXPLAIN QUERY PLAN rows, and of any other command with one made-up
`EOF` stage. Each test is a strict xfail there that accepts only that gap (`NxGap`, shown by
the answer itself); against a real MongoDB (`MONGODB_TEST_URI`) every one runs for real.

Three passes of the reconciler have no index yet (README, "Scaling out"): they are strict
xfails on a real MongoDB too, so the day an index serves them the tests say to drop the mark.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database
from payments_api.models import api_key as api_key_store
from payments_api.models import daily_limit as daily_limit_store
from payments_api.models import event as event_store
from payments_api.models import ledger as ledger_store
from payments_api.models import payment as payment_store
from payments_api.models import payment_pages
from payments_api.models import refund as refund_store
from payments_api.models import user as user_store
from payments_api.models.api_key import KeyRecord
from payments_api.models.event import Event
from payments_api.models.ledger import LedgerRecord
from payments_api.models.payment import Payment
from payments_api.models.refund import Refund
from payments_api.models.user import User
from payments_api.services.event_access import EventQuery
from payments_api.services.payment_history import HistoryQuery, Owner, filters_of
from payments_api.services.registry import Services
from payments_api.utils.clock import utcnow
from tests.fixtures.races import NxGap
from tests.fixtures.wire import WireServer
from tests.wire.conftest import CommandLog

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PAYMENTS = 60
USERS = ("usr_me", "usr_other")
MERCHANTS = ("mch_1", "mch_2")
STATUSES = (
    PaymentStatus.COMPLETED,
    PaymentStatus.FAILED,
    PaymentStatus.REFUNDED,
    PaymentStatus.PARTIALLY_REFUNDED,
)
CURSOR = "pay_028"
"""A payment of usr_me and mch_1 in the middle of both histories."""
EVENT_TYPES = (EventType.PAYMENT_COMPLETED, EventType.PAYMENT_FAILED, EventType.PAYMENT_REFUNDED)

DRIVER_FIELDS = frozenset(
    {"lsid", "txnNumber", "autocommit", "startTransaction", "readConcern", "writeConcern"}
)
"""What the driver adds to a command, which `explain` does not take."""


class SqlitePlanNotMongoStages(NxGap):
    """nx-27017 answers `explain` of a find with SQLite's EXPLAIN QUERY PLAN rows
    (`{"detail": "SEARCH … USING INDEX idx_…"}`), not MongoDB's stages and index names."""


class MadeUpEofPlan(NxGap):
    """nx-27017 answers `explain` of every command but a find (findAndModify, aggregate) with
    one `{"stage": "EOF"}` and no namespace, whatever the collection holds."""


# --- the data the plans are made on ---------------------------------------------------------


def _payment(n: int, now: datetime) -> Payment:
    """Alternating owners and merchants, four statuses in turn (two pending), an order id each,
    every payment changed just now (so no reconciler pass claims one)."""
    status = PaymentStatus.PENDING if n in (7, 8) else STATUSES[n % len(STATUSES)]
    return Payment(
        id=f"pay_{n:03d}",
        user_id=USERS[n // 2 % 2],
        merchant_id=MERCHANTS[n % 2],
        amount=1_000 + n,
        currency="KRW",
        payment_method="card",
        product_name="Tea",
        status=status,
        merchant_order_id=f"order-{n}",
        idempotency_key=f"key-{n}",
        request_fingerprint="f",
        hold_day="2026-01-01",
        created_at=T0 + timedelta(seconds=n),
        updated_at=now,
        next_recheck_at=now + timedelta(hours=1) if status == PaymentStatus.FAILED else None,
    )


def _event(n: int, now: datetime) -> Event:
    kind = EVENT_TYPES[n % len(EVENT_TYPES)]
    return Event(
        id=f"evt_{n:03d}",
        type=kind,
        payment_id=f"pay_{n % 10:03d}",
        merchant_id=MERCHANTS[n % 2],
        dedupe_key=f"{kind.value}:pay_{n % 10:03d}:{n}",
        data={"sequence": n},
        status="draft" if n % 15 == 0 else ("pending" if n % 3 else "delivered"),
        next_attempt_at=now + timedelta(hours=1),
        created_at=T0 + timedelta(seconds=n),
    )


def _refund(n: int, now: datetime) -> Refund:
    return Refund(
        id=f"re_{n:03d}",
        payment_id=f"pay_{n % 10:03d}",
        user_id=USERS[0],
        merchant_id=MERCHANTS[0],
        amount=100,
        reason="returned",
        status="succeeded",
        requested_by=MERCHANTS[0],
        idempotency_scope=f"{MERCHANTS[0]}:refund-{n}" if n % 2 else None,
        created_at=T0 + timedelta(seconds=n),
        updated_at=now,
    )


def _movement(n: int) -> LedgerRecord:
    kind = "payment" if n < 10 else "refund"
    return LedgerRecord(
        id=f"txn_{n:03d}",
        payment_id=f"pay_{n % 10:03d}",
        user_id=USERS[0],
        merchant_id=MERCHANTS[0],
        type=kind,
        reference=f"pay_{n:03d}" if kind == "payment" else f"re_{n:03d}",
        amount=100,
        description=kind,
        created_at=T0 + timedelta(seconds=n),
    )


def _user(n: int, now: datetime) -> User:
    return User(
        id=f"usr_{n:03d}",
        email=f"user{n}@example.com",
        password_hash="x",
        name=f"User {n}",
        phone_key=f"+8210{n:08d}" if n % 2 else None,
        daily_limit=2_000_000,
        created_at=now,
        updated_at=now,
    )


async def _seed(db: Database) -> None:
    now = utcnow()
    documents: dict[str, list[dict[str, Any]]] = {
        payment_store.COLLECTION: [_payment(n, now).to_mongo() for n in range(PAYMENTS)],
        event_store.COLLECTION: [_event(n, now).to_mongo() for n in range(60)],
        refund_store.COLLECTION: [_refund(n, now).to_mongo() for n in range(20)],
        ledger_store.COLLECTION: [_movement(n).to_mongo() for n in range(20)],
        user_store.COLLECTION: [_user(n, now).to_mongo() for n in range(20)],
        api_key_store.COLLECTION: [
            KeyRecord(id=f"key_{n}", key_hash=f"{n:064x}", merchant_id=MERCHANTS[n % 2]).to_mongo()
            for n in range(20)
        ],
        daily_limit_store.COLLECTION: [
            {"_id": daily_limit_store.document_id(f"usr_{n:03d}", "2026-01-01"), "spent": 0}
            for n in range(20)
        ],
    }
    for collection, docs in documents.items():
        await db[collection].insert_many(docs)


# --- the hot queries ------------------------------------------------------------------------

Run = Callable[[Services], Awaitable[object]]


@dataclass(frozen=True)
class HotQuery:
    name: str
    collection: str
    command: str
    """The command it is sent as (`find`, `findAndModify`, `aggregate` for a count)."""
    run: Run
    indexes: frozenset[str]
    """The index (or, where several serve it alike, the indexes) its plan may read."""
    picks: Callable[[dict[str, Any]], bool] = lambda _: True
    """Which of the commands `run` sent is this query (the last one of them is taken)."""
    sorts_in_memory: bool = False
    unindexed: str | None = None
    """Why no index serves it yet: then a strict xfail on a real MongoDB too."""


def _history_query(**fields: Any) -> HistoryQuery:
    values: dict[str, Any] = {"page": None, "limit": 20, "status": None, "start": None, "end": None}
    return HistoryQuery(**{**values, **fields})


HISTORY_FILTERS: dict[str, tuple[dict[str, Any], str]] = {
    # name: (the HistoryQuery's filters, the index of `<owner>_payments_<it>`)
    "all": ({}, "newest"),
    "status": ({"status": PaymentStatus.COMPLETED.value}, "by_status"),
    "order": ({"merchant_order_id": "order-4"}, "by_order"),
    # A merchantOrderId matches a few payments: the status is checked on those.
    "status+order": (
        {"status": PaymentStatus.COMPLETED.value, "merchant_order_id": "order-4"},
        "by_order",
    ),
    "range": ({"start": T0 + timedelta(seconds=10), "end": T0 + timedelta(seconds=50)}, "newest"),
}


def _history(owner: Owner, fields: dict[str, Any], kind: str) -> Run:
    filters = filters_of(owner, _history_query(**fields))

    async def run(services: Services) -> object:
        db = services.database
        if kind in ("page", "count"):
            return await payment_pages.numbered_page(db, filters, skip=0, limit=21)
        cursor = await payment_store.find_by_id(db, CURSOR)
        assert cursor is not None
        if kind == "after":
            return await payment_pages.after(db, filters, cursor, limit=21)
        return await payment_pages.before(db, filters, cursor, limit=21)

    return run


def _history_queries() -> Iterator[HotQuery]:
    owners = [Owner("userId", USERS[0]), Owner("merchantId", MERCHANTS[0])]
    for owner, (name, (fields, index)) in itertools.product(owners, HISTORY_FILTERS.items()):
        prefix = "user" if owner.field == "userId" else "merchant"
        expected = frozenset({f"{prefix}_payments_{index}"})
        for kind in ("page", "count", "after", "before"):
            indexes = expected
            if kind == "count" and index == "newest":
                # A count by the owner alone is answered alike by every index it prefixes.
                indexes = frozenset(
                    {f"{prefix}_payments_{i}" for i in ("newest", "by_status", "by_order")}
                    | ({"user_idempotency_key_unique"} if prefix == "user" else set())
                )
            yield HotQuery(
                name=f"{prefix} history {name} {kind}",
                collection=payment_store.COLLECTION,
                command="aggregate" if kind == "count" else "find",
                run=_history(owner, fields, kind),
                indexes=indexes,
            )


def _claim_naming(field: str, value: object = None) -> Callable[[dict[str, Any]], bool]:
    """The claim whose query names `field` (equal to `value`, when given)."""

    def picks(body: dict[str, Any]) -> bool:
        query = body.get("query", {})
        return field in query and (value is None or query[field] == value)

    return picks


async def _reconcile(services: Services) -> object:
    return await services.reconciler.run_once()


async def _claim_due(services: Services) -> object:
    now = utcnow()
    return await event_store.claim_due(services.database, "w", now, now + timedelta(seconds=10))


async def _merchant_events(services: Services, **fields: Any) -> object:
    return await services.events.for_merchant(MERCHANTS[0], EventQuery(limit=20, **fields))


def _on(function: Callable[..., Awaitable[object]], *args: Any, **kwargs: Any) -> Run:
    async def run(services: Services) -> object:
        return await function(services.database, *args, **kwargs)

    return run


def _events(**fields: Any) -> Run:
    async def run(services: Services) -> object:
        return await _merchant_events(services, **fields)

    return run


BY_ID = frozenset({"_id_"})
NO_INDEX = "no index serves it yet: each reconciler pass scans the collection"
PAYMENTS_ = payment_store.COLLECTION
EVENTS_ = event_store.COLLECTION

HOT_QUERIES: list[HotQuery] = [
    *_history_queries(),
    HotQuery("payment by id", PAYMENTS_, "find", _on(payment_store.find_by_id, CURSOR), BY_ID),
    HotQuery(
        "payment by (userId, idempotencyKey)",
        PAYMENTS_,
        "find",
        _on(payment_store.find_by_idempotency_key, USERS[0], "key-4"),
        frozenset({"user_idempotency_key_unique"}),
    ),
    HotQuery(
        "reconciler: pending payments",
        PAYMENTS_,
        "findAndModify",
        _reconcile,
        frozenset({"status_age"}),
        picks=_claim_naming("status", PaymentStatus.PENDING.value),
    ),
    HotQuery(
        "reconciler: expired authorizations",
        PAYMENTS_,
        "findAndModify",
        _reconcile,
        frozenset({"status_age"}),
        picks=_claim_naming("authorizationExpiresAt"),
    ),
    HotQuery(
        "reconciler: reserved refunds and cancels",
        PAYMENTS_,
        "findAndModify",
        _reconcile,
        frozenset(),
        picks=_claim_naming("pendingRefunds.0"),
        unindexed=NO_INDEX,
    ),
    HotQuery(
        "reconciler: captures and voids under way",
        PAYMENTS_,
        "findAndModify",
        _reconcile,
        frozenset(),
        picks=_claim_naming("authorizationStep.kind"),
        unindexed=NO_INDEX,
    ),
    HotQuery(
        "late charge recheck",
        PAYMENTS_,
        "findAndModify",
        _reconcile,
        frozenset({"late_charge_recheck"}),
        picks=_claim_naming("nextRecheckAt"),
    ),
    HotQuery(
        "oldest pending payment (metric)",
        PAYMENTS_,
        "find",
        _reconcile,
        frozenset({"status_age"}),
        picks=lambda body: "createdAt" in body.get("sort", {}),
        # Sorted by createdAt, which status_age does not hold: the pending payments (few) are
        # sorted in memory, keeping only the first (a top-1 sort). Each reconciler pass and each
        # /metrics scrape (services/operational_gauges.py) sends it.
        sorts_in_memory=True,
    ),
    HotQuery(
        "reconciler: stale drafts",
        EVENTS_,
        "find",
        _reconcile,
        frozenset({"event_due"}),
    ),
    HotQuery(
        "reconciler: refunds never reserved",
        refund_store.COLLECTION,
        "find",
        _reconcile,
        frozenset(),
        unindexed="no index on refunds' status: each reconciler pass scans refunds",
    ),
    HotQuery("events due", EVENTS_, "findAndModify", _claim_due, frozenset({"event_due"})),
    HotQuery(
        "events in a delivery status (metric, each scrape)",
        EVENTS_,
        "aggregate",
        _on(event_store.count_in_status, "pending"),
        frozenset({"event_due"}),
    ),
    HotQuery("merchant events", EVENTS_, "find", _events(), frozenset({"merchant_events"})),
    HotQuery(
        "merchant events after a cursor",
        EVENTS_,
        "find",
        _events(starting_after="evt_032"),
        frozenset({"merchant_events"}),
        picks=lambda body: "merchantId" in body.get("filter", {}),
    ),
    HotQuery(
        "merchant events of a payment",
        EVENTS_,
        "find",
        _events(payment_id="pay_002"),
        frozenset({"merchant_payment_events"}),
    ),
    HotQuery(
        "merchant events of a type",
        EVENTS_,
        "find",
        _events(type=EventType.PAYMENT_FAILED),
        frozenset({"merchant_events_by_type"}),
    ),
    HotQuery(
        "events of a payment",
        EVENTS_,
        "find",
        _on(event_store.for_payment, "pay_002"),
        frozenset({"payment_events"}),
    ),
    HotQuery(
        "event by dedupeKey",
        EVENTS_,
        "find",
        _on(event_store.find_by_dedupe_key, "payment.failed:pay_001:1"),
        frozenset({"event_dedupe_unique"}),
    ),
    HotQuery(
        "refunds of a payment",
        refund_store.COLLECTION,
        "find",
        _on(refund_store.for_payment, "pay_002"),
        frozenset({"payment_refunds"}),
    ),
    HotQuery(
        "refund by idempotency scope",
        refund_store.COLLECTION,
        "find",
        _on(refund_store.find_by_idempotency_scope, f"{MERCHANTS[0]}:refund-3"),
        frozenset({"refund_idempotency_unique"}),
    ),
    HotQuery(
        "ledger of a payment",
        ledger_store.COLLECTION,
        "find",
        _on(ledger_store.for_payment, "pay_002"),
        frozenset({"payment_ledger"}),
    ),
    HotQuery(
        "ledger movement by (type, reference)",
        ledger_store.COLLECTION,
        "aggregate",
        _on(ledger_store.has_movement, "refund", "re_012"),
        frozenset({"movement_unique"}),
    ),
    HotQuery(
        "api key by keyHash",
        api_key_store.COLLECTION,
        "find",
        _on(api_key_store.find_record, f"{3:064x}"),
        frozenset({"key_hash_unique"}),
    ),
    HotQuery(
        "user by email",
        user_store.COLLECTION,
        "find",
        _on(user_store.find_by_email, "user3@example.com"),
        frozenset({"email_unique"}),
    ),
    HotQuery(
        "email taken",
        user_store.COLLECTION,
        "aggregate",
        _on(user_store.exists_with, "email", "user3@example.com"),
        frozenset({"email_unique"}),
    ),
    HotQuery(
        "phone number taken",
        user_store.COLLECTION,
        "aggregate",
        _on(user_store.exists_with, "phoneKey", f"+8210{3:08d}"),
        frozenset({"phone_key_unique"}),
    ),
    HotQuery(
        "user by id", user_store.COLLECTION, "find", _on(user_store.find_by_id, "usr_003"), BY_ID
    ),
    HotQuery(
        "daily spending of a user's day",
        daily_limit_store.COLLECTION,
        "find",
        _on(daily_limit_store.find, "usr_003", "2026-01-01"),
        BY_ID,
    ),
]


# --- reading a plan -------------------------------------------------------------------------


def _for_explain(command: str, body: dict[str, Any]) -> dict[str, Any]:
    """The command as sent, less what the driver adds, with its own name first."""
    rest = {k: v for k, v in body.items() if k != command and k not in DRIVER_FIELDS}
    return {command: body[command], **{k: v for k, v in rest.items() if not k.startswith("$")}}


def _stages(plan: Any) -> Iterator[dict[str, Any]]:
    """Every stage of the winning plan (classic or slot-based, one shard's or each shard's),
    however nested: the rejected plans are left out."""
    if isinstance(plan, dict):
        if "stage" in plan:
            yield plan
        for key, value in plan.items():
            if key != "rejectedPlans":
                yield from _stages(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from _stages(value)


def _planners(explained: Any) -> Iterator[dict[str, Any]]:
    if isinstance(explained, dict):
        if isinstance(explained.get("queryPlanner"), dict):
            yield explained["queryPlanner"]
        for value in explained.values():
            yield from _planners(value)
    elif isinstance(explained, list):
        for value in explained:
            yield from _planners(value)


def _gap_shown(explained: dict[str, Any]) -> NxGap | None:
    """The nx-27017 gap its answer shows, if any (a MongoDB gives neither of these)."""
    for planner in _planners(explained):
        winning = planner.get("winningPlan")
        if isinstance(winning, list) and all(
            isinstance(row, dict) and "detail" in row and "stage" not in row for row in winning
        ):
            return SqlitePlanNotMongoStages(str(winning))
        if winning == {"stage": "EOF"} and "namespace" not in planner:
            return MadeUpEofPlan(str(planner))
    return None


def _indexes_read(stages: list[dict[str, Any]]) -> set[str]:
    """The indexes the stages read. A lookup by `_id` may be MongoDB's IDHACK (through 7.x)
    or an EXPRESS stage (8.0), neither of which always names the index."""
    read = {str(stage["indexName"]) for stage in stages if "indexName" in stage}
    for stage in stages:
        name = str(stage["stage"])
        if name == "IDHACK" or (name.startswith("EXPRESS") and "indexName" not in stage):
            read.add("_id_")
    return read


async def _explain(db: Database, command: str, body: dict[str, Any]) -> dict[str, Any]:
    explained: dict[str, Any] = await db.db.command(
        "explain", _for_explain(command, body), verbosity="queryPlanner"
    )
    gap = _gap_shown(explained)
    if gap is not None:
        raise gap
    return explained


@pytest.mark.parametrize("query", HOT_QUERIES, ids=lambda query: query.name)
async def test_a_hot_query_reads_its_index(
    query: HotQuery,
    recorded_services: Services,
    wire_commands: CommandLog,
    wire_server: WireServer,
    request: pytest.FixtureRequest,
) -> None:
    if wire_server.nx:
        gap = SqlitePlanNotMongoStages if query.command == "find" else MadeUpEofPlan
        reason = " ".join(str(gap.__doc__).split())
        request.applymarker(pytest.mark.xfail(reason=reason, raises=gap, strict=True))
    elif query.unindexed is not None:
        request.applymarker(
            pytest.mark.xfail(reason=query.unindexed, raises=AssertionError, strict=True)
        )
    db = recorded_services.database
    await _seed(db)
    wire_commands.commands.clear()

    await query.run(recorded_services)

    sent = [
        body
        for name, body in wire_commands.commands
        if name == query.command and body.get(name) == query.collection and query.picks(body)
    ]
    assert sent, f"{query.name}: no {query.command} on {query.collection} was sent"
    explained = await _explain(db, query.command, sent[-1])
    stages = list(_stages([planner.get("winningPlan") for planner in _planners(explained)]))
    read = _indexes_read(stages)
    shape = [stage["stage"] for stage in stages]
    assert read, f"{query.name} reads no index: {shape}"
    assert read <= query.indexes, f"{query.name} reads {sorted(read)}: {shape}"
    assert "COLLSCAN" not in shape, shape
    if not query.sorts_in_memory:
        assert "SORT" not in shape, f"{query.name} sorts in memory: {shape}"
