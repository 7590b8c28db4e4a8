"""Two settlements of one pending payment with different outcomes, interleaved on a deployment
without transactions (the in-memory stand-in has none): the one that loses its compare-and-set
leaves no ledger record and no event behind, and no merchant hears of it. A settlement that died
half-way is finished, or discarded, by reconciliation.

The first tests interleave the two steps by hand: the second settlement runs inside the first
one, right after a chosen write. The last ones let them race freely on the race backends (the
interleaving stand-in and the wire), in both orders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.models import event as events_model
from payments_api.models import ledger as ledger_model
from payments_api.models import payment as payments_model
from payments_api.models.event import Event
from payments_api.models.payment import Payment
from payments_api.services.events import STREAM
from payments_api.utils.clock import utcnow
from tests.fixtures.crashes import ProcessDied, die_once
from tests.fixtures.payments import (
    Shop,
    ledger_of,
    open_shop,
    stats_of,
    stored_event_types,
)
from tests.fixtures.races import race_in_order
from tests.fixtures.reconciliation import (
    Clock,
    abandoned_payment,
    charged_at_gateway,
    daily_holds,
    reconcile_after,
    reconciler_for,
)

AMOUNT = 10_000


def after_first_call(
    monkeypatch: pytest.MonkeyPatch,
    module: Any,
    name: str,
    then: Callable[[], Awaitable[Any]],
    when: Callable[..., bool] = lambda *args, **kwargs: True,
) -> None:
    """Run `then()` right after the first call of `module.name` that `when` accepts."""
    original = getattr(module, name)
    fired = False

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal fired
        result = await original(*args, **kwargs)
        if not fired and when(*args, **kwargs):
            fired = True
            await then()
        return result

    monkeypatch.setattr(module, name, wrapped)


async def published_types(app: FastAPI, payment_id: str) -> list[str]:
    entries = await app.state.services.redis.xrange(STREAM)
    return [
        fields["type"] for _, fields in entries if f'"paymentId":"{payment_id}"' in fields["data"]
    ]


async def visible_events(client: httpx.AsyncClient, shop: Shop, payment_id: str) -> list[str]:
    response = await client.get(
        "/api/v1/events", params={"paymentId": payment_id}, headers=shop.admin
    )
    assert response.status_code == 200, response.text
    return [event["type"] for event in response.json()["events"]]


async def test_a_completion_that_loses_to_a_failure_leaves_no_record_and_tells_no_one(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, AMOUNT)
    services = app.state.services

    async def meanwhile() -> None:
        # The completion has written its event and its ledger record; a dispatcher runs,
        # then the failure settles the payment first.
        await services.dispatcher.run_once()
        await services.settlement.fail(payment, "CARD_DECLINED", "The card was declined")

    after_first_call(monkeypatch, ledger_model, "record_movement", meanwhile)
    result = await services.settlement.complete(payment, "gtx_lost")

    assert result.status == "failed"
    assert await ledger_of(app, payment.id) == []
    assert await visible_events(client, shop, payment.id) == ["payment.failed"]
    assert await stored_event_types(app, payment.id) == ["payment.failed"]
    await services.dispatcher.run_once()
    assert await published_types(app, payment.id) == ["payment.failed"]
    assert (await daily_holds(app, shop))["spent"] == 0
    assert (await stats_of(client, shop.user))["totalTransactions"] == 0


async def test_a_failure_that_loses_to_a_completion_leaves_no_event_and_keeps_the_hold(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, AMOUNT)
    services = app.state.services

    async def meanwhile() -> None:
        await services.dispatcher.run_once()
        await services.settlement.complete(payment, "gtx_won")

    def failed_event(db: Any, event: Event, *args: Any) -> bool:
        return bool(event.type == "payment.failed")

    after_first_call(monkeypatch, events_model, "append", meanwhile, when=failed_event)
    result = await services.settlement.fail(payment, "NOT_CHARGED", "reversed")

    assert result.status == "completed"
    [record] = await ledger_of(app, payment.id)
    assert (record["type"], record["amount"]) == ("payment", AMOUNT)
    assert await stored_event_types(app, payment.id) == ["payment.completed"]
    await services.dispatcher.run_once()
    assert await published_types(app, payment.id) == ["payment.completed"]
    assert (await daily_holds(app, shop))["spent"] == AMOUNT  # the hold stays taken
    assert (await stats_of(client, shop.user))["totalTransactions"] == 1


async def test_a_completion_that_died_before_publishing_its_event_is_finished_once(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, AMOUNT)
    services = app.state.services
    die_once(monkeypatch, events_model, "publish_draft")
    with pytest.raises(ProcessDied):
        await services.settlement.complete(payment, "gtx_1")

    stored = await payments_model.find_by_id(services.database, payment.id)
    assert stored is not None
    assert stored.status == "completed"
    # Until it is finished, the event reaches no one.
    await services.dispatcher.run_once()
    assert await visible_events(client, shop, payment.id) == []
    assert await published_types(app, payment.id) == []

    clock = Clock(stored.updated_at + reconcile_after(app))
    await reconciler_for(app, clock).run_once()
    await reconciler_for(app, clock).run_once()

    assert await visible_events(client, shop, payment.id) == ["payment.completed"]
    await services.dispatcher.run_once()
    assert await published_types(app, payment.id) == ["payment.completed"]
    [record] = await ledger_of(app, payment.id)
    assert record["type"] == "payment"
    totals = await stats_of(client, shop.user)
    assert (totals["totalTransactions"], totals["totalAmount"]) == (1, AMOUNT)


async def test_a_completion_that_died_right_after_its_compare_and_set_keeps_its_record(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no transaction rolls the step back, the payment may be `completed` with nothing
    after it done: its ledger record must already be there, since nothing writes it later."""
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, AMOUNT)
    services = app.state.services
    die_once(monkeypatch, payments_model, "update_where", after=True)
    with pytest.raises(ProcessDied):
        await services.settlement.complete(payment, "gtx_cut_short")

    stored = await payments_model.find_by_id(services.database, payment.id)
    assert stored is not None
    assert stored.status == "completed"
    await reconciler_for(app, Clock(stored.updated_at + reconcile_after(app))).run_once()

    [record] = await ledger_of(app, payment.id)
    assert (record["type"], record["amount"]) == ("payment", AMOUNT)
    assert await visible_events(client, shop, payment.id) == ["payment.completed"]
    totals = await stats_of(client, shop.user)
    assert (totals["totalTransactions"], totals["totalAmount"]) == (1, AMOUNT)


async def _fail_first(app: FastAPI, payment: Payment) -> None:
    await app.state.services.settlement.fail(payment, "NOT_CHARGED", "reversed")


async def test_the_records_of_a_completion_that_died_after_losing_are_discarded(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, AMOUNT)
    services = app.state.services
    await _fail_first(app, payment)
    # A completion of the same payment, resumed late, writes its draft and ledger record
    # and dies before its compare-and-set.
    die_once(monkeypatch, payments_model, "update_where")
    with pytest.raises(ProcessDied):
        await services.settlement.complete(payment, "gtx_late")
    assert len(await ledger_of(app, payment.id)) == 1

    clock = Clock(utcnow() + reconcile_after(app))
    await reconciler_for(app, clock).run_once()

    assert await ledger_of(app, payment.id) == []
    assert await stored_event_types(app, payment.id) == ["payment.failed"]
    assert (await daily_holds(app, shop))["spent"] == 0


async def test_a_failure_clears_what_a_completion_that_died_before_its_compare_and_set_left(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, AMOUNT)
    services = app.state.services
    die_once(monkeypatch, payments_model, "update_where")
    with pytest.raises(ProcessDied):
        await services.settlement.complete(payment, "gtx_unconfirmed")

    result = await services.settlement.fail(payment, "NOT_CHARGED", "reversed")

    assert result.status == "failed"
    assert await ledger_of(app, payment.id) == []
    assert await stored_event_types(app, payment.id) == ["payment.failed"]


async def test_the_draft_of_a_failure_that_died_before_losing_is_discarded(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, AMOUNT)
    services = app.state.services
    die_once(monkeypatch, payments_model, "update_where")
    with pytest.raises(ProcessDied):
        await services.settlement.fail(payment, "NOT_CHARGED", "reversed")
    await services.settlement.complete(payment, "gtx_won")

    await reconciler_for(app, Clock(utcnow() + reconcile_after(app))).run_once()

    assert await stored_event_types(app, payment.id) == ["payment.completed"]
    assert (await daily_holds(app, shop))["spent"] == AMOUNT


# --- free races -------------------------------------------------------------------------------


async def assert_settled_once(
    client: httpx.AsyncClient, app: FastAPI, shop: Shop, payment: Payment, status: str
) -> None:
    """The payment ended `status`, and everything else agrees, exactly once."""
    stored = await payments_model.find_by_id(app.state.services.database, payment.id)
    assert stored is not None
    assert stored.status == status
    records = [(r["type"], r["amount"]) for r in await ledger_of(app, payment.id)]
    spent = (await daily_holds(app, shop))["spent"]
    totals = await stats_of(client, shop.user)
    if status == "completed":
        assert records == [("payment", AMOUNT)]
        assert spent == AMOUNT
        assert (totals["totalTransactions"], totals["totalAmount"]) == (1, AMOUNT)
    else:
        assert records == []
        assert spent == 0
        assert totals["totalTransactions"] == 0
    assert await stored_event_types(app, payment.id) == [f"payment.{status}"]
    await app.state.services.dispatcher.run_once()
    assert await published_types(app, payment.id) == [f"payment.{status}"]


@pytest.mark.race
@pytest.mark.parametrize("first", ["completion", "failure"])
async def test_a_completion_and_a_failure_racing_freely_settle_once(
    client: httpx.AsyncClient, app: FastAPI, first: str
) -> None:
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, AMOUNT)
    settlement = app.state.services.settlement
    steps = {
        "completion": lambda: settlement.complete(payment, "gtx_racing"),
        "failure": lambda: settlement.fail(payment, "NOT_CHARGED", "Reversed at the gateway"),
    }

    results = await race_in_order(first, steps)

    winner = results["completion"].status
    assert results["failure"].status == winner  # both tell the winner
    await assert_settled_once(client, app, shop, payment, winner)


@pytest.mark.race
@pytest.mark.parametrize("first", ["request", "reconciler"])
async def test_a_late_answer_racing_the_reconciler_settles_once(
    client: httpx.AsyncClient, app: FastAPI, first: str
) -> None:
    """The request's own answer arrives just as the reconciler takes the payment up: one
    completion, one ledger record, one event, whichever gets there first."""
    shop = await open_shop(client)
    payment = await abandoned_payment(app, shop, AMOUNT)
    answer = await charged_at_gateway(app, payment)
    reconciler = reconciler_for(app, Clock(payment.updated_at + reconcile_after(app)))
    steps = {
        "request": lambda: app.state.services.settlement.settle(payment, answer),
        "reconciler": reconciler.run_once,
    }

    await race_in_order(first, steps)

    await assert_settled_once(client, app, shop, payment, "completed")
