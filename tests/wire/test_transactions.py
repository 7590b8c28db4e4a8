"""Multi-document transactions over the wire: one step's writes land together or not at all.

nx-27017 serialises poorly: every logical database is one SQLite connection, so two
transactions open at once share it and fail (or see each other's writes). Everything here runs
one request at a time; the concurrency tests (marked `race`) also run over the wire, with
transactions off on nx-27017 (`tests/fixtures/races.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from payments_api.config.constants import EventType, PaymentStatus
from payments_api.config.database import Database, describe_uri
from payments_api.config.settings import Settings
from payments_api.models import event as events
from payments_api.models import ledger
from payments_api.models import payment as payments
from payments_api.models.ledger import LedgerRecord
from payments_api.models.payment import Payment, Transition
from payments_api.services.events import payment_event
from payments_api.services.registry import Services
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from tests.fixtures.factories import CreatedMerchant, RegisteredUser, create_merchant, register_user
from tests.fixtures.payments import payment_body, post_payment
from tests.fixtures.wire import WireServer

APPROVED_AMOUNT = 10_000
"""The sandbox gateway approves amounts ending in 000."""

NX_EMBEDDED_PUSH = (
    "nx-27017 0.8.1 stores a `$push`ed embedded document as a JSON string (`pendingRefunds`), "
    "so reading the payment back fails (500); run against a real MongoDB with MONGODB_TEST_URI"
)


@pytest.fixture
def transactional(wire_server: WireServer, wire_services: Services) -> Database:
    """The started app's database, running its steps in transactions.

    The nx-27017 started for the tier runs transactions, so there the app always runs with
    `on`: if it ever does not (an nx-27017 that stopped running them, a probe that stopped
    seeing it), these tests fail saying so instead of skipping, since a silent skip would
    leave the tier testing no transaction at all. Only a `MONGODB_TEST_URI` that truly runs
    none (a standalone mongod) is a server these tests do not apply to: they skip there, with
    the server (without credentials) in the reason."""
    if not wire_server.transactions:
        server = describe_uri(wire_server.uri)
        if wire_server.nx:
            pytest.fail(
                f"the tier's own nx-27017 at {server} runs no transactions: "
                "it always has, so the server or the probe of tests/wire/conftest.py changed"
            )
        pytest.skip(
            f"MONGODB_TEST_URI={server} runs no transactions (a standalone mongod?): "
            "use a replica set to run these tests"
        )
    database = wire_services.database
    assert database.supports_transactions is True, "the app does not run its steps in them"
    return database


def _xfail_on_nx(wire_server: WireServer, request: pytest.FixtureRequest) -> None:
    if wire_server.nx:
        request.applymarker(pytest.mark.xfail(reason=NX_EMBEDDED_PUSH, strict=True))


async def _pay(
    client: httpx.AsyncClient,
    user: RegisteredUser,
    merchant: CreatedMerchant,
    key: str,
    amount: int = APPROVED_AMOUNT,
) -> dict[str, Any]:
    response = await post_payment(client, user, payment_body(merchant.merchant_id, amount), key)
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()["payment"]
    return payment


async def _one(database: Database, collection: str, query: dict[str, Any]) -> dict[str, Any]:
    found = [doc async for doc in database[collection].find(query)]
    assert len(found) == 1, (collection, query, found)
    document: dict[str, Any] = found[0]
    return document


async def test_the_app_runs_with_transactions_and_steps_get_a_session(
    transactional: Database,
) -> None:
    database = transactional
    assert database.supports_transactions is True
    async with database.transaction() as session:
        assert session is not None
        assert session.in_transaction


async def test_a_completed_payment_writes_payment_ledger_record_and_event(
    wire_client: httpx.AsyncClient, wire_services: Services
) -> None:
    user = await register_user(wire_client)
    merchant = await create_merchant(wire_client)

    payment = await _pay(wire_client, user, merchant, "order-1")

    assert payment["status"] == "completed"
    database = wire_services.database
    stored = await _one(database, "payments", {"_id": payment["paymentId"]})
    assert stored["status"] == PaymentStatus.COMPLETED.value
    assert stored["transactionId"] == payment["transactionId"]
    record = await _one(database, "transactions", {"paymentId": payment["paymentId"]})
    assert (record["type"], record["reference"], record["amount"]) == (
        "payment",
        payment["paymentId"],
        APPROVED_AMOUNT,
    )
    event = await _one(database, "events", {"paymentId": payment["paymentId"]})
    assert event["type"] == EventType.PAYMENT_COMPLETED.value
    owner = await _one(database, "users", {"_id": user.user_id})
    assert owner["stats"]["totalTransactions"] == 1
    assert owner["stats"]["totalAmount"] == APPROVED_AMOUNT


def _completion(payment: Payment) -> Transition:
    """The change the event of `payment`, stored completed, describes."""
    pending = payment.model_copy(update={"status": PaymentStatus.PENDING})
    return Transition.of(pending, payment.created_at, status=PaymentStatus.COMPLETED)


def _completed_payment(user_id: str) -> Payment:
    now = utcnow()
    return Payment(
        id=ids.payment_id(),
        user_id=user_id,
        merchant_id="mch_aborted",
        amount=APPROVED_AMOUNT,
        currency="KRW",
        payment_method="card",
        product_name="Never",
        status=PaymentStatus.COMPLETED,
        idempotency_key="aborted-1",
        request_fingerprint="fingerprint",
        hold_day=now.date().isoformat(),
        created_at=now,
        updated_at=now,
    )


def _payment_record(payment: Payment) -> LedgerRecord:
    return LedgerRecord(
        id=ids.transaction_id(),
        payment_id=payment.id,
        user_id=payment.user_id,
        merchant_id=payment.merchant_id,
        type="payment",
        reference=payment.id,
        amount=payment.amount,
        description=f"Payment for {payment.product_name}",
        created_at=payment.created_at,
    )


class StepFailedError(Exception):
    pass


async def _write_all_then_fail(
    database: Database, payment: Payment, record: LedgerRecord, event: events.Event
) -> None:
    """One step: the payment, its ledger record and its event, then a failure before the end."""
    async with database.transaction() as session:
        assert session is not None
        await payments.insert(database, payment, session)
        assert await ledger.append(database, record, session)
        assert await events.append(database, event, session)
        # Written, as far as the transaction itself can tell:
        assert await payments.find_by_id(database, payment.id, session) is not None
        raise StepFailedError


async def test_an_aborted_step_writes_none_of_its_documents(transactional: Database) -> None:
    database = transactional
    payment = _completed_payment("usr_aborted")
    record = _payment_record(payment)
    event = payment_event(EventType.PAYMENT_COMPLETED, _completion(payment), payment.created_at)

    with pytest.raises(StepFailedError):
        await _write_all_then_fail(database, payment, record, event)

    assert await database["payments"].find_one({"_id": payment.id}) is None
    assert await database["transactions"].find_one({"_id": record.id}) is None
    assert await database["events"].find_one({"_id": event.id}) is None


async def test_a_committed_step_keeps_all_of_its_documents(transactional: Database) -> None:
    """The counterpart of the aborted step: the same writes, no exception, all three stay."""
    database = transactional
    payment = _completed_payment("usr_committed")
    record = _payment_record(payment)
    event = payment_event(EventType.PAYMENT_COMPLETED, _completion(payment), payment.created_at)

    async with database.transaction() as session:
        assert session is not None
        await payments.insert(database, payment, session)
        await ledger.append(database, record, session)
        await events.append(database, event, session)

    assert await database["payments"].find_one({"_id": payment.id}) is not None
    assert await database["transactions"].find_one({"_id": record.id}) is not None
    assert await database["events"].find_one({"_id": event.id}) is not None


async def test_with_transactions_off_a_step_runs_without_a_session(
    wire_make_settings: Callable[..., Settings],
) -> None:
    database = Database(wire_make_settings(mongodb_transactions="off"))
    try:
        await database.connect()
        assert database.supports_transactions is False
        payment = _completed_payment("usr_no_session")
        async with database.transaction() as session:
            assert session is None
            await payments.insert(database, payment, session)
        assert await payments.find_by_id(database, payment.id) is not None
    finally:
        database.close()


async def test_a_cancel_works_end_to_end(
    wire_client: httpx.AsyncClient,
    wire_services: Services,
    wire_server: WireServer,
    request: pytest.FixtureRequest,
) -> None:
    _xfail_on_nx(wire_server, request)
    user = await register_user(wire_client)
    merchant = await create_merchant(wire_client)
    payment = await _pay(wire_client, user, merchant, "order-cancel")

    response = await wire_client.post(
        f"/api/v1/payments/{payment['paymentId']}/cancel",
        json={"reason": "Changed my mind"},
        headers=user.headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["refundInfo"]["refundAmount"] == APPROVED_AMOUNT
    database = wire_services.database
    stored = await _one(database, "payments", {"_id": payment["paymentId"]})
    assert stored["status"] == PaymentStatus.CANCELLED.value
    assert stored["pendingRefunds"] == []
    cancel = await _one(
        database, "transactions", {"paymentId": payment["paymentId"], "type": "cancel"}
    )
    assert cancel["amount"] == APPROVED_AMOUNT
    await _one(
        database,
        "events",
        {"paymentId": payment["paymentId"], "type": EventType.PAYMENT_CANCELLED.value},
    )
    spending = await _one(database, "daily_spending", {"userId": user.user_id})
    assert payment["paymentId"] not in spending["holds"]
    assert spending["spent"] == 0


async def test_a_refund_works_end_to_end(
    wire_client: httpx.AsyncClient,
    wire_services: Services,
    wire_server: WireServer,
    request: pytest.FixtureRequest,
) -> None:
    _xfail_on_nx(wire_server, request)
    user = await register_user(wire_client)
    merchant = await create_merchant(wire_client)
    payment = await _pay(wire_client, user, merchant, "order-refund")

    response = await wire_client.post(
        f"/api/v1/payments/{payment['paymentId']}/refund",
        json={"amount": 3_000, "reason": "One cup was cold"},
        headers=merchant.headers,
    )

    assert response.status_code == 200, response.text
    refund = response.json()["refund"]
    assert refund["status"] == "succeeded"
    database = wire_services.database
    stored = await _one(database, "payments", {"_id": payment["paymentId"]})
    assert stored["status"] == PaymentStatus.PARTIALLY_REFUNDED.value
    assert stored["refundedAmount"] == 3_000
    assert stored["pendingRefunds"] == []
    assert (await _one(database, "refunds", {"_id": refund["refundId"]}))["status"] == "succeeded"
    record = await _one(
        database, "transactions", {"type": "refund", "reference": refund["refundId"]}
    )
    assert record["amount"] == 3_000
    await _one(
        database,
        "events",
        {"paymentId": payment["paymentId"], "type": EventType.PAYMENT_REFUNDED.value},
    )


async def _authorize(
    client: httpx.AsyncClient, user: RegisteredUser, merchant: CreatedMerchant, key: str
) -> dict[str, Any]:
    body = payment_body(merchant.merchant_id, APPROVED_AMOUNT, captureMethod="manual")
    response = await post_payment(client, user, body, key)
    assert response.status_code == 201, response.text
    payment: dict[str, Any] = response.json()["payment"]
    assert payment["status"] == "authorized"
    return payment


async def test_a_partial_capture_writes_its_ledger_record_event_and_hold_trim_together(
    wire_client: httpx.AsyncClient, wire_services: Services
) -> None:
    user = await register_user(wire_client)
    merchant = await create_merchant(wire_client)
    payment = await _authorize(wire_client, user, merchant, "order-capture")

    response = await wire_client.post(
        f"/api/v1/payments/{payment['paymentId']}/capture",
        json={"amount": 6_000},
        headers=merchant.headers,
    )

    assert response.status_code == 200, response.text
    database = wire_services.database
    stored = await _one(database, "payments", {"_id": payment["paymentId"]})
    assert (stored["status"], stored["capturedAmount"]) == ("completed", 6_000)
    assert stored["authorizationStep"] is None
    record = await _one(database, "transactions", {"paymentId": payment["paymentId"]})
    assert (record["type"], record["amount"]) == ("payment", 6_000)
    completed = await _one(
        database, "events", {"paymentId": payment["paymentId"], "type": "payment.completed"}
    )
    assert completed["status"] != "draft"
    spending = await _one(database, "daily_spending", {"userId": user.user_id})
    assert spending["spent"] == 6_000


async def test_a_void_gives_the_hold_back_and_writes_no_ledger_record(
    wire_client: httpx.AsyncClient, wire_services: Services
) -> None:
    user = await register_user(wire_client)
    merchant = await create_merchant(wire_client)
    payment = await _authorize(wire_client, user, merchant, "order-void")

    response = await wire_client.post(
        f"/api/v1/payments/{payment['paymentId']}/cancel",
        json={"reason": "Out of stock"},
        headers=merchant.headers,
    )

    assert response.status_code == 200, response.text
    database = wire_services.database
    stored = await _one(database, "payments", {"_id": payment["paymentId"]})
    assert (stored["status"], stored["capturedAmount"]) == ("cancelled", 0)
    assert [d async for d in database["transactions"].find({"paymentId": stored["_id"]})] == []
    spending = await _one(database, "daily_spending", {"userId": user.user_id})
    assert spending["spent"] == 0
