"""PaymentService.create, PaymentReadService and CancelService, below HTTP.

create: one key makes one payment and one charge at the gateway, whatever is asked again; the
answer follows the gateway (completed; declined → PaymentDeclined; unreachable →
PaymentGatewayUnavailable with the hold given back; no answer → still pending, hold kept);
what is refused before the gateway (daily limit, user, merchant, amount) stores and charges
nothing. Reads: the payer, the payee and an active admin, nobody else. Cancel: a completed
payment with nothing refunded, once, with its ledger record, event and hold release; an
unconfirmed cancel stays reserved until a retry finishes it.

The in-memory stand-in has no transactions, so these tests run the order-of-writes path."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from payments_api.config.constants import EventType, FailureCode, PaymentStatus, Role
from payments_api.models import daily_limit as daily_limit_model
from payments_api.models import event as events_model
from payments_api.models import merchant as merchants_model
from payments_api.models import payment as payments_model
from payments_api.models import user as users_model
from payments_api.models.merchant import Merchant
from payments_api.models.payment import Payment, PendingRefund, public_view
from payments_api.models.user import User
from payments_api.services import cancellations as cancellations_module
from payments_api.services.auth import Principal, UserInactive
from payments_api.services.cancellations import (
    CANCEL_REFERENCE,
    CancelGatewayUnavailable,
    CancelNotConfirmed,
    PaymentNotCancellable,
)
from payments_api.services.daily_limits import DailyLimitExceeded
from payments_api.services.idempotency import IdempotencyKeyInUse, IdempotencyKeyReused
from payments_api.services.merchants import MerchantNotFound
from payments_api.services.payment_failures import PaymentDeclined, PaymentGatewayUnavailable
from payments_api.services.payment_reads import PaymentNotFound
from payments_api.services.payments import AmountTooLarge, CreatedPayment, NewPayment
from payments_api.services.refund_errors import RefundExceedsAvailable
from payments_api.services.registry import Services
from payments_api.utils import ids
from tests.services.conftest import (
    USER_DAILY_LIMIT,
    Fault,
    MakeMerchant,
    MakePayment,
    MakeUser,
    ProcessDied,
    Sandbox,
    answer_lost,
    answering,
    die_once,
    drafts_of,
    events_of,
    forget_idempotency_keys,
    ledger_of,
    matches,
    raising,
    stored,
)

AMOUNT = 10_000
DECLINED = 10_402  # the sandbox declines an amount ending 402
TIMES_OUT = 10_408  # ... charges one ending 408, but answers after the caller's timeout
FIVE_XX = 10_503  # ... answers one ending 503 with a 503, charging nothing
LIMIT = USER_DAILY_LIMIT  # the `user` fixture's
KEY = "order-1"


def order(merchant: Merchant, amount: int = AMOUNT, **fields: Any) -> NewPayment:
    return order_to(merchant.id, amount, **fields)


def order_to(merchant_id: str, amount: int = AMOUNT, **fields: Any) -> NewPayment:
    values: dict[str, Any] = {
        "amount": amount,
        "merchant_id": merchant_id,
        "payment_method": "card",
        "product_name": "Coffee beans",
        "currency": "KRW",
        **fields,
    }
    return NewPayment(**values)


async def pay(
    services: Services, user: User, merchant: Merchant, amount: int = AMOUNT, key: str = KEY
) -> Payment:
    """A payment the gateway approved."""
    created = await services.payments.create(user.id, key, order(merchant, amount))
    assert created.payment.status == PaymentStatus.COMPLETED
    return created.payment


def charge_calls(sandbox: Sandbox) -> int:
    """Charge requests the services sent (reaching the sandbox or stopped by a fault)."""
    return sandbox.transport.calls.count("POST /v1/charges")


async def spent(services: Services, user: User) -> int:
    """What the user's payments hold against the daily limit, over every business day (so a
    test that runs over midnight still counts one day's holds)."""
    cursor = services.database[daily_limit_model.COLLECTION].find({"userId": user.id})
    return sum([int(day["spent"]) async for day in cursor])


async def payments_of(services: Services, user: User) -> list[Payment]:
    cursor = services.database[payments_model.COLLECTION].find({"userId": user.id})
    return [Payment.from_mongo(raw) async for raw in cursor]


# --- create: the gateway approves -------------------------------------------------------------


async def test_a_completed_create_returns_the_payment_charged_once_at_the_gateway(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant
) -> None:
    created = await services.payments.create(user.id, KEY, order(merchant))

    current = await stored(services, created.payment.id)
    assert created == CreatedPayment(created.payment, replayed=False)
    assert current.status == PaymentStatus.COMPLETED
    assert public_view(created.payment) == public_view(current)
    charge = await sandbox.charge_of(current.id)
    assert charge is not None
    assert (charge["status"], charge["amount"]) == ("approved", AMOUNT)
    assert current.transaction_id == charge["transactionId"]
    stats = await sandbox.stats()
    assert (stats["chargesMade"], stats["chargeRequests"]) == (1, 1)
    assert await spent(services, user) == AMOUNT


async def test_the_same_key_and_body_again_replays_the_payment_without_a_second_charge(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant
) -> None:
    first = await services.payments.create(user.id, KEY, order(merchant))

    again = await services.payments.create(user.id, KEY, order(merchant))

    assert again.replayed is True
    assert again.payment.id == first.payment.id
    assert public_view(again.payment) == public_view(await stored(services, first.payment.id))
    stats = await sandbox.stats()
    assert (stats["chargesMade"], stats["chargeRequests"]) == (1, 1)
    assert len(await payments_of(services, user)) == 1
    assert await spent(services, user) == AMOUNT


@pytest.mark.parametrize(
    "changed",
    [
        {"amount": AMOUNT + 1},
        {"product_name": "Tea leaves"},
        {"payment_method": "bank_transfer"},
        {"currency": "USD"},
    ],
    ids=["amount", "productName", "paymentMethod", "currency"],
)
async def test_the_same_key_with_another_body_is_refused(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant, changed: dict[str, Any]
) -> None:
    await services.payments.create(user.id, KEY, order(merchant))

    with pytest.raises(IdempotencyKeyReused):
        await services.payments.create(user.id, KEY, order(merchant, **changed))

    assert len(await payments_of(services, user)) == 1
    assert charge_calls(sandbox) == 1


async def test_the_same_key_to_another_merchant_is_refused(
    services: Services,
    sandbox: Sandbox,
    user: User,
    merchant: Merchant,
    make_merchant: MakeMerchant,
) -> None:
    other = await make_merchant()
    await services.payments.create(user.id, KEY, order(merchant))

    with pytest.raises(IdempotencyKeyReused):
        await services.payments.create(user.id, KEY, order(other))

    assert charge_calls(sandbox) == 1


async def test_a_key_is_the_users_own(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant, make_user: MakeUser
) -> None:
    other_user = await make_user(daily_limit=LIMIT)

    mine = await services.payments.create(user.id, KEY, order(merchant))
    theirs = await services.payments.create(other_user.id, KEY, order(merchant))

    assert theirs.replayed is False
    assert theirs.payment.id != mine.payment.id
    assert theirs.payment.user_id == other_user.id
    assert (await sandbox.stats())["chargesMade"] == 2


@dataclass
class Gate:
    """Holds the services' charge requests at the gateway's door until `opened`."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def fault(self) -> Fault:
        async def hold(request: httpx.Request) -> httpx.Response | None:
            if matches(request, "POST", "/v1/charges"):
                self.reached.set()
                await self.opened.wait()
            return None

        return hold


async def test_the_same_key_while_the_first_request_runs_is_told_to_retry(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant
) -> None:
    gate = Gate()
    sandbox.faults.append(gate.fault())
    first = asyncio.create_task(services.payments.create(user.id, KEY, order(merchant)))
    await asyncio.wait_for(gate.reached.wait(), timeout=5)

    with pytest.raises(IdempotencyKeyInUse) as in_use:
        await services.payments.create(user.id, KEY, order(merchant))

    gate.opened.set()
    created = await first
    assert in_use.value.retry_after_seconds is not None
    assert created.payment.status == PaymentStatus.COMPLETED
    assert len(await payments_of(services, user)) == 1
    assert charge_calls(sandbox) == 1


async def test_an_amount_of_exactly_max_payment_amount_is_charged(
    services: Services, make_user: MakeUser, merchant: Merchant
) -> None:
    most = services.settings.max_payment_amount
    rich = await make_user(daily_limit=most)

    created = await services.payments.create(rich.id, KEY, order(merchant, most))

    assert created.payment.status == PaymentStatus.COMPLETED
    assert created.payment.amount == most


# --- create: the gateway says no, or nothing ---------------------------------------------------


async def test_a_decline_raises_payment_declined_with_the_failed_payment_and_gives_the_hold_back(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant
) -> None:
    with pytest.raises(PaymentDeclined) as declined:
        await services.payments.create(user.id, KEY, order(merchant, DECLINED))

    failed = declined.value.payment
    current = await stored(services, failed.id)
    assert declined.value.replayed is False
    assert declined.value.code == "PAYMENT_DECLINED"
    assert current.status == PaymentStatus.FAILED
    assert current.failure_code == "CARD_DECLINED"
    assert public_view(failed) == public_view(current)
    assert declined.value.extra == {"payment": public_view(current)}
    assert await spent(services, user) == 0
    assert (await sandbox.stats())["chargesMade"] == 0


async def test_a_declined_key_replays_the_decline_without_asking_the_gateway_again(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant
) -> None:
    with pytest.raises(PaymentDeclined) as first:
        await services.payments.create(user.id, KEY, order(merchant, DECLINED))

    with pytest.raises(PaymentDeclined) as again:
        await services.payments.create(user.id, KEY, order(merchant, DECLINED))

    assert again.value.replayed is True
    assert again.value.payment.id == first.value.payment.id
    assert again.value.payment.status == PaymentStatus.FAILED
    assert charge_calls(sandbox) == 1
    assert len(await payments_of(services, user)) == 1


async def test_an_unreachable_gateway_fails_the_payment_charging_nothing_and_gives_the_hold_back(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant
) -> None:
    sandbox.faults.append(raising(httpx.ConnectError, "POST", "/v1/charges"))

    with pytest.raises(PaymentGatewayUnavailable) as unavailable:
        await services.payments.create(user.id, KEY, order(merchant))

    current = await stored(services, unavailable.value.payment.id)
    assert unavailable.value.replayed is False
    assert unavailable.value.code == "GATEWAY_UNAVAILABLE"
    assert current.status == PaymentStatus.FAILED
    assert current.failure_code == FailureCode.GATEWAY_UNAVAILABLE
    assert public_view(unavailable.value.payment) == public_view(current)
    assert await spent(services, user) == 0
    assert await sandbox.charge_of(current.id) is None
    assert await ledger_of(services, current.id) == []

    with pytest.raises(PaymentGatewayUnavailable) as replayed:
        await services.payments.create(user.id, KEY, order(merchant))
    assert replayed.value.replayed is True
    assert replayed.value.payment.id == current.id
    assert charge_calls(sandbox) == 1


NO_ANSWER_CASES = {
    "read-timeout": (AMOUNT, raising(httpx.ReadTimeout, "POST", "/v1/charges")),
    "answered-after-the-timeout": (TIMES_OUT, None),
    "gateway-5xx": (FIVE_XX, None),
}


@pytest.mark.parametrize("service_settings", [{"gateway_timeout_seconds": 0.3}], indirect=True)
@pytest.mark.parametrize("case", list(NO_ANSWER_CASES))
async def test_no_answer_from_the_gateway_leaves_the_payment_pending_with_its_hold(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant, case: str
) -> None:
    amount, fault = NO_ANSWER_CASES[case]
    if fault is not None:
        sandbox.faults.append(fault)

    created = await services.payments.create(user.id, KEY, order(merchant, amount))

    assert created.replayed is False
    current = await stored(services, created.payment.id)
    assert created.payment.status == current.status == PaymentStatus.PENDING
    assert public_view(created.payment) == public_view(current)
    assert await spent(services, user) == amount
    assert await ledger_of(services, current.id) == []
    assert await events_of(services, current.id) == []
    if amount == TIMES_OUT:  # the charge stands: reconciliation will find it
        charge = await sandbox.charge_of(current.id)
        assert charge is not None
        assert charge["status"] == "approved"

    again = await services.payments.create(user.id, KEY, order(merchant, amount))
    assert again.replayed is True
    assert again.payment.id == current.id
    assert again.payment.status == PaymentStatus.PENDING
    assert charge_calls(sandbox) == 1


# --- create: refused before the gateway -------------------------------------------------------


async def test_over_the_daily_limit_is_refused_with_what_remains_storing_and_charging_nothing(
    services: Services, sandbox: Sandbox, make_user: MakeUser, merchant: Merchant
) -> None:
    user = await make_user(daily_limit=50_000)
    await pay(services, user, merchant, 30_000, key="earlier")

    with pytest.raises(DailyLimitExceeded) as exceeded:
        await services.payments.create(user.id, KEY, order(merchant, 20_001))

    assert exceeded.value.remaining_today == 20_000
    assert exceeded.value.extra == {"remainingToday": 20_000}
    assert [p.amount for p in await payments_of(services, user)] == [30_000]
    assert charge_calls(sandbox) == 1
    assert await spent(services, user) == 30_000


async def test_a_payment_refused_over_the_limit_leaves_its_key_free_for_another_try(
    services: Services, make_user: MakeUser, merchant: Merchant
) -> None:
    user = await make_user(daily_limit=50_000)
    with pytest.raises(DailyLimitExceeded):
        await services.payments.create(user.id, KEY, order(merchant, 50_001))

    created = await services.payments.create(user.id, KEY, order(merchant, 50_000))

    assert created.replayed is False
    assert created.payment.status == PaymentStatus.COMPLETED


async def test_an_inactive_user_is_refused_storing_and_charging_nothing(
    services: Services, sandbox: Sandbox, make_user: MakeUser, merchant: Merchant
) -> None:
    inactive = await make_user(is_active=False)

    with pytest.raises(UserInactive):
        await services.payments.create(inactive.id, KEY, order(merchant))

    assert await payments_of(services, inactive) == []
    assert charge_calls(sandbox) == 0
    assert await spent(services, inactive) == 0


@pytest.mark.parametrize("which", ["unknown", "inactive"])
async def test_an_unknown_or_inactive_merchant_is_not_found_storing_and_charging_nothing(
    services: Services, sandbox: Sandbox, user: User, make_merchant: MakeMerchant, which: str
) -> None:
    if which == "unknown":
        merchant_id = ids.merchant_id()
    else:
        merchant_id = (await make_merchant(is_active=False)).id

    with pytest.raises(MerchantNotFound):
        await services.payments.create(user.id, KEY, order_to(merchant_id))

    assert await payments_of(services, user) == []
    assert charge_calls(sandbox) == 0
    assert await spent(services, user) == 0


async def test_an_amount_over_max_payment_amount_is_refused_storing_and_charging_nothing(
    services: Services, sandbox: Sandbox, make_user: MakeUser, merchant: Merchant
) -> None:
    most = services.settings.max_payment_amount
    rich = await make_user(daily_limit=2 * most)

    with pytest.raises(AmountTooLarge) as too_large:
        await services.payments.create(rich.id, KEY, order(merchant, most + 1))

    assert too_large.value.extra == {"maxAmount": most}
    assert await payments_of(services, rich) == []
    assert charge_calls(sandbox) == 0


# --- create: what Redis forgot, and a process that died ---------------------------------------


@pytest.mark.parametrize("amount", [AMOUNT, DECLINED], ids=["completed", "declined"])
async def test_a_key_redis_forgot_is_replayed_from_the_database_without_a_second_charge(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant, amount: int
) -> None:
    with contextlib.suppress(PaymentDeclined):
        await services.payments.create(user.id, KEY, order(merchant, amount))
    [first] = await payments_of(services, user)
    assert await forget_idempotency_keys(services) >= 1

    if amount == DECLINED:
        with pytest.raises(PaymentDeclined) as declined:
            await services.payments.create(user.id, KEY, order(merchant, amount))
        again = CreatedPayment(declined.value.payment, declined.value.replayed)
    else:
        again = await services.payments.create(user.id, KEY, order(merchant, amount))

    assert again.replayed is True
    assert again.payment.id == first.id
    assert charge_calls(sandbox) == 1
    assert len(await payments_of(services, user)) == 1


async def test_a_key_redis_forgot_still_refuses_another_body(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant
) -> None:
    await services.payments.create(user.id, KEY, order(merchant))
    await forget_idempotency_keys(services)

    with pytest.raises(IdempotencyKeyReused):
        await services.payments.create(user.id, KEY, order(merchant, AMOUNT + 1))

    assert len(await payments_of(services, user)) == 1
    assert charge_calls(sandbox) == 1


@pytest.mark.parametrize("since", ["user deactivated", "merchant deactivated"])
async def test_a_key_redis_forgot_replays_its_payment_whoever_is_refused_since(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant, since: str
) -> None:
    """The key is looked up only once the request is refused (payments.py `_create_once`):
    a refusal of the payer or the merchant made after the key's payment still answers the
    replay, as the unique index's answer does."""
    first = await pay(services, user, merchant)
    await forget_idempotency_keys(services)
    if since == "user deactivated":
        await users_model.update(services.database, user.id, {"isActive": False})
    else:
        await merchants_model.update(services.database, merchant.id, {"isActive": False})

    again = await services.payments.create(user.id, KEY, order(merchant))

    assert again.replayed is True
    assert again.payment.id == first.id
    assert again.payment.status == PaymentStatus.COMPLETED
    assert charge_calls(sandbox) == 1
    assert len(await payments_of(services, user)) == 1


@pytest.mark.parametrize("since", ["user deactivated", "merchant deactivated"])
async def test_a_key_redis_forgot_still_refuses_another_body_whoever_is_refused_since(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant, since: str
) -> None:
    await pay(services, user, merchant)
    await forget_idempotency_keys(services)
    if since == "user deactivated":
        await users_model.update(services.database, user.id, {"isActive": False})
    else:
        await merchants_model.update(services.database, merchant.id, {"isActive": False})

    with pytest.raises(IdempotencyKeyReused):
        await services.payments.create(user.id, KEY, order(merchant, AMOUNT + 1))

    assert len(await payments_of(services, user)) == 1
    assert charge_calls(sandbox) == 1


async def test_a_crash_between_recording_the_payment_and_its_hold_leaves_no_hold_and_no_charge(
    services: Services,
    sandbox: Sandbox,
    user: User,
    merchant: Merchant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    die_once(monkeypatch, daily_limit_model, "try_hold")

    with pytest.raises(ProcessDied):
        await services.payments.create(user.id, KEY, order(merchant))

    assert await spent(services, user) == 0
    assert charge_calls(sandbox) == 0
    assert await payments_of(services, user) == []
    # Nothing moved, so the key was let go: a retry makes the payment, once.
    created = await services.payments.create(user.id, KEY, order(merchant))
    assert created.replayed is False
    assert created.payment.status == PaymentStatus.COMPLETED
    assert charge_calls(sandbox) == 1


async def test_a_hold_that_took_effect_before_its_call_failed_is_not_left_orphaned(
    services: Services,
    sandbox: Sandbox,
    user: User,
    merchant: Merchant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    die_once(monkeypatch, daily_limit_model, "try_hold", after=True)

    with pytest.raises(ProcessDied):
        await services.payments.create(user.id, KEY, order(merchant))

    assert charge_calls(sandbox) == 0
    # Either the payment stays (pending, for reconciliation to fail and release) or its hold
    # goes with it: never a hold without a payment.
    held_by_payments = sum(p.amount for p in await payments_of(services, user))
    assert await spent(services, user) == held_by_payments


# --- reads ------------------------------------------------------------------------------------


READ_PATHS = ["database", "cached", "cache-miss"]


async def read(services: Services, principal: Principal, payment_id: str, path: str) -> Any:
    """The payment as `principal` reads it: the model (`database`) or the contract's JSON
    through the read cache (`cached`: the cache holds it for its user and its merchant;
    `cache-miss`: it does not)."""
    if path == "database":
        return public_view(await services.payment_reads.get_for_reader(principal, payment_id))
    found = await payments_model.find_by_id(services.database, payment_id)
    readers = (found.user_id, found.merchant_id) if found is not None else ()
    cache = services.payment_reads.cache
    if path == "cache-miss":
        await cache.forget(payment_id, *readers)
    else:
        for reader in readers:
            assert await cache.get(reader, payment_id) is not None
    return json.loads(await services.payment_reads.read_json(principal, payment_id))


@pytest.fixture
async def paid(services: Services, user: User, merchant: Merchant) -> Payment:
    return await pay(services, user, merchant)


@pytest.mark.parametrize("path", READ_PATHS)
@pytest.mark.parametrize("reader", ["payer", "payee", "active-admin"])
async def test_the_payer_the_payee_and_an_active_admin_read_the_payment(
    services: Services, paid: Payment, make_user: MakeUser, reader: str, path: str
) -> None:
    if reader == "payer":
        principal = Principal("user", paid.user_id)
    elif reader == "payee":
        principal = Principal("merchant", paid.merchant_id)
    else:
        principal = Principal("user", (await make_user(role=Role.ADMIN)).id)

    assert await read(services, principal, paid.id, path) == public_view(
        await stored(services, paid.id)
    )


@pytest.mark.parametrize("path", READ_PATHS)
@pytest.mark.parametrize("reader", ["other-user", "other-merchant", "deactivated-admin"])
async def test_anyone_else_is_told_the_payment_does_not_exist(
    services: Services,
    paid: Payment,
    make_user: MakeUser,
    make_merchant: MakeMerchant,
    reader: str,
    path: str,
) -> None:
    if reader == "other-user":
        principal = Principal("user", (await make_user()).id)
    elif reader == "other-merchant":
        principal = Principal("merchant", (await make_merchant()).id)
    else:
        principal = Principal("user", (await make_user(role=Role.ADMIN, is_active=False)).id)

    with pytest.raises(PaymentNotFound):
        await read(services, principal, paid.id, path)


@pytest.mark.parametrize("path", ["database", "cache-miss"])
async def test_an_unknown_payment_is_not_found(services: Services, user: User, path: str) -> None:
    with pytest.raises(PaymentNotFound):
        await read(services, Principal("user", user.id), ids.payment_id(), path)


# --- cancel -----------------------------------------------------------------------------------


REASON = "Ordered by mistake"


def cancel_calls(sandbox: Sandbox) -> int:
    return sum(1 for call in sandbox.transport.calls if call.endswith("/cancel"))


async def test_a_completed_payment_cancels_with_its_ledger_record_event_and_hold_release(
    services: Services, sandbox: Sandbox, user: User, merchant: Merchant, paid: Payment
) -> None:
    other = await pay(services, user, merchant, 3_000, key="other")
    assert await spent(services, user) == AMOUNT + 3_000

    cancelled = await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)

    current = await stored(services, paid.id)
    assert public_view(cancelled) == public_view(current)
    assert current.status == PaymentStatus.CANCELLED
    assert (current.cancel_reason, current.refunded_amount) == (REASON, AMOUNT)
    assert current.cancelled_at is not None
    assert current.pending_refunds == []
    assert [(r.type, r.amount) for r in await ledger_of(services, paid.id)] == [
        ("payment", AMOUNT),
        ("cancel", AMOUNT),
    ]
    events = await events_of(services, paid.id)
    assert [e.type for e in events] == [EventType.PAYMENT_COMPLETED, EventType.PAYMENT_CANCELLED]
    assert events[-1].data["payment"] == public_view(current)
    assert await spent(services, user) == other.amount  # its own hold, and only its own
    charge = await sandbox.charge_of(paid.id)
    assert charge is not None
    assert charge["status"] == "cancelled"


async def test_a_second_cancel_is_not_cancellable_and_writes_nothing(
    services: Services, sandbox: Sandbox, user: User, paid: Payment
) -> None:
    await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)

    with pytest.raises(PaymentNotCancellable):
        await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)

    assert cancel_calls(sandbox) == 1
    assert [r.type for r in await ledger_of(services, paid.id)] == ["payment", "cancel"]
    assert [e.type for e in await events_of(services, paid.id)] == [
        EventType.PAYMENT_COMPLETED,
        EventType.PAYMENT_CANCELLED,
    ]
    assert await spent(services, user) == 0


async def test_another_users_payment_is_not_found_to_cancel(
    services: Services, sandbox: Sandbox, paid: Payment, make_user: MakeUser
) -> None:
    stranger = await make_user()

    with pytest.raises(PaymentNotFound):
        await services.cancellations.cancel(Principal("user", stranger.id), paid.id, REASON)
    with pytest.raises(PaymentNotFound):
        await services.cancellations.cancel(
            Principal("user", stranger.id), ids.payment_id(), REASON
        )

    assert (await stored(services, paid.id)).status == PaymentStatus.COMPLETED
    assert cancel_calls(sandbox) == 0


@pytest.mark.parametrize("refund", ["settled", "awaiting-its-answer"])
async def test_a_payment_with_something_refunded_is_not_cancellable(
    services: Services, sandbox: Sandbox, user: User, paid: Payment, refund: str
) -> None:
    if refund == "awaiting-its-answer":  # still `completed`, with 1,000 reserved
        sandbox.faults.append(answer_lost(sandbox, "POST", "/refunds"))
    await services.refunds.refund(
        Principal("merchant", paid.merchant_id), paid.id, amount=1_000, reason="Broken", key=None
    )
    before = await stored(services, paid.id)

    with pytest.raises(PaymentNotCancellable):
        await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)

    assert await stored(services, paid.id) == before
    assert before.refunded_amount == 1_000
    assert cancel_calls(sandbox) == 0


@pytest.mark.parametrize("status", ["pending", "failed"])
async def test_a_payment_not_completed_is_not_cancellable(
    services: Services,
    sandbox: Sandbox,
    user: User,
    merchant: Merchant,
    make_pending_payment: MakePayment,
    status: str,
) -> None:
    if status == "pending":
        payment = await make_pending_payment(user, merchant)
    else:
        with pytest.raises(PaymentDeclined) as declined:
            await services.payments.create(user.id, KEY, order(merchant, DECLINED))
        payment = declined.value.payment

    with pytest.raises(PaymentNotCancellable):
        await services.cancellations.cancel(Principal("user", user.id), payment.id, REASON)

    assert (await stored(services, payment.id)).status == status
    assert cancel_calls(sandbox) == 0


@pytest.mark.parametrize("lost", ["request", "answer"])
async def test_an_unconfirmed_cancel_stays_reserved_until_a_retry_finishes_it_once(
    services: Services,
    sandbox: Sandbox,
    user: User,
    merchant: Merchant,
    paid: Payment,
    lost: str,
) -> None:
    other = await pay(services, user, merchant, 3_000, key="other")
    fault = (
        raising(httpx.ReadTimeout, "POST", "/cancel")
        if lost == "request"
        else answer_lost(sandbox, "POST", "/cancel")
    )
    sandbox.faults.append(fault)

    with pytest.raises(CancelNotConfirmed):
        await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)

    reserved = await stored(services, paid.id)
    assert reserved.status == PaymentStatus.COMPLETED
    assert reserved.refunded_amount == AMOUNT
    assert reserved.pending_refunds == [
        PendingRefund(refund_id=CANCEL_REFERENCE, amount=AMOUNT, reason=REASON)
    ]
    assert [r.type for r in await ledger_of(services, paid.id)] == ["payment"]
    assert await spent(services, user) == AMOUNT + other.amount

    sandbox.faults.remove(fault)
    cancelled = await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)

    assert cancelled.status == PaymentStatus.CANCELLED
    assert [r.type for r in await ledger_of(services, paid.id)] == ["payment", "cancel"]
    assert [e.type for e in await events_of(services, paid.id)] == [
        EventType.PAYMENT_COMPLETED,
        EventType.PAYMENT_CANCELLED,
    ]
    assert await spent(services, user) == other.amount
    assert (await stored(services, paid.id)).pending_refunds == []


async def test_a_cancel_awaiting_its_answer_leaves_nothing_to_refund(
    services: Services, sandbox: Sandbox, user: User, paid: Payment
) -> None:
    sandbox.faults.append(raising(httpx.ReadTimeout, "POST", "/cancel"))
    with pytest.raises(CancelNotConfirmed):
        await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)

    with pytest.raises(RefundExceedsAvailable) as exceeds:
        await services.refunds.refund(
            Principal("merchant", paid.merchant_id), paid.id, amount=1, reason="x", key=None
        )

    assert exceeds.value.available_amount == 0


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (raising(httpx.ConnectError, "POST", "/cancel"), CancelGatewayUnavailable),
        (answering(409, "POST", "/cancel"), PaymentNotCancellable),
    ],
    ids=["unreachable", "refused"],
)
async def test_a_cancel_the_gateway_did_not_do_gives_its_reservation_back(
    services: Services,
    sandbox: Sandbox,
    user: User,
    paid: Payment,
    fault: Fault,
    error: type[Exception],
) -> None:
    sandbox.faults.append(fault)

    with pytest.raises(error):
        await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)

    current = await stored(services, paid.id)
    assert current.status == PaymentStatus.COMPLETED
    assert (current.refunded_amount, current.pending_refunds) == (0, [])
    assert [r.type for r in await ledger_of(services, paid.id)] == ["payment"]
    assert await spent(services, user) == AMOUNT
    # And it can be cancelled later.
    sandbox.faults.remove(fault)
    cancelled = await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)
    assert cancelled.status == PaymentStatus.CANCELLED


def ticking(start: datetime) -> Iterator[datetime]:
    """A clock a second further on at each reading."""
    for n in range(1_000):
        yield start + timedelta(seconds=n)


async def test_a_cancel_retried_after_dying_publishes_the_payment_as_stored(
    services: Services, user: User, paid: Payment, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ticking(paid.updated_at + timedelta(seconds=1))
    monkeypatch.setattr(cancellations_module, "utcnow", lambda: next(clock))
    die_once(monkeypatch, events_model, "append", after=True)
    with pytest.raises(ProcessDied):
        await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)

    await services.cancellations.cancel(
        Principal("user", user.id), paid.id, REASON
    )  # the retry finishes it

    current = await stored(services, paid.id)
    assert current.status == PaymentStatus.CANCELLED
    cancelled_event = [
        e for e in await events_of(services, paid.id) if e.type == EventType.PAYMENT_CANCELLED
    ]
    assert [e.data["payment"] for e in cancelled_event] == [public_view(current)]


async def test_a_cancel_that_died_after_its_state_change_is_published_once_by_recovery(
    services: Services, user: User, paid: Payment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without transactions, the cancel stored `cancelled` and died before publishing its
    event: the draft is finished by reconciliation's draft pass, once, with what was stored."""
    die_once(monkeypatch, events_model, "publish_draft")
    with pytest.raises(ProcessDied):
        await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)
    assert all(e.type != EventType.PAYMENT_CANCELLED for e in await events_of(services, paid.id))
    [draft] = await drafts_of(services, paid.id)

    await services.settlement.recover_draft(draft)
    await services.settlement.recover_draft(draft)

    current = await stored(services, paid.id)
    assert current.status == PaymentStatus.CANCELLED
    cancelled = [
        e for e in await events_of(services, paid.id) if e.type == EventType.PAYMENT_CANCELLED
    ]
    assert [e.data["payment"] for e in cancelled] == [public_view(current)]
    assert await drafts_of(services, paid.id) == []


async def test_the_draft_of_a_cancel_still_reserved_is_left_to_the_cancel_pass(
    services: Services, user: User, paid: Payment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that died after writing its draft, before its state change: the draft pass
    leaves it (the cancel pass finishes the cancel and publishes it), never publishes a
    `payment.cancelled` for a payment that is not cancelled yet."""
    die_once(monkeypatch, events_model, "append", after=True)
    with pytest.raises(ProcessDied):
        await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)
    [draft] = await drafts_of(services, paid.id)

    await services.settlement.recover_draft(draft)

    assert (await stored(services, paid.id)).cancel_reserved
    assert [d.id for d in await drafts_of(services, paid.id)] == [draft.id]
    assert all(e.type != EventType.PAYMENT_CANCELLED for e in await events_of(services, paid.id))


async def test_the_draft_of_a_cancel_given_back_is_discarded(
    services: Services, user: User, paid: Payment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel that died after writing its draft, then given back (the reservation undone):
    its draft is discarded, and no `payment.cancelled` is ever delivered."""
    die_once(monkeypatch, events_model, "append", after=True)
    with pytest.raises(ProcessDied):
        await services.cancellations.cancel(Principal("user", user.id), paid.id, REASON)
    [draft] = await drafts_of(services, paid.id)
    await services.cancellations.undo_cancel(await stored(services, paid.id))

    await services.settlement.recover_draft(draft)

    assert (await stored(services, paid.id)).status == PaymentStatus.COMPLETED
    assert await drafts_of(services, paid.id) == []
    assert all(e.type != EventType.PAYMENT_CANCELLED for e in await events_of(services, paid.id))
