"""Fixtures for service-level tests: the services of one process (`open_services`) on test
settings — the real throwaway Redis, the in-memory MongoDB stand-in, the sandbox gateway
in-process through an ASGI transport — with no app and no HTTP in front of them.

- `service_settings`: the settings the services are opened with. Override it in a module, or
  per test with `@pytest.mark.parametrize("service_settings", [{...}], indirect=True)` (the
  dict's items override `make_settings`' defaults).
- `sandbox`: the sandbox gateway those services talk to, with a view of it through its own
  routes and a way to make its calls fail as a network would (`sandbox.faults`).
- `services`: the `Services`, opened for the test and closed after it.
- `make_user`, `make_merchant`, `make_pending_payment`: data made directly through the models,
  as the services themselves store it (the factories of tests/fixtures/factories.py make data
  through the HTTP API, which these tests do not have).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from payments_api.config.constants import PaymentStatus
from payments_api.config.settings import Settings
from payments_api.models import event as events_model
from payments_api.models import ledger as ledger_model
from payments_api.models import merchant as merchants_model
from payments_api.models import payment as payments_model
from payments_api.models import refund as refunds_model
from payments_api.models import user as users_model
from payments_api.models.event import Event
from payments_api.models.ledger import LedgerRecord
from payments_api.models.merchant import Merchant
from payments_api.models.payment import Payment, PendingRefund
from payments_api.models.refund import Refund
from payments_api.models.user import User
from payments_api.sandbox_gateway.app import create_sandbox_app
from payments_api.services.events import STREAM
from payments_api.services.gateway import GatewayResult
from payments_api.services.merchants import issue_key
from payments_api.services.reconciliation import Reconciler
from payments_api.services.registry import Services, open_services
from payments_api.utils import ids
from payments_api.utils.clock import utcnow
from payments_api.utils.crypto import random_secret
from payments_api.utils.metrics import Metrics
from tests.fixtures.crashes import ProcessDied, die_once
from tests.fixtures.reconciliation import Clock, reconciler_on

__all__ = ["Clock", "ProcessDied", "die_once"]

MakeUser = Callable[..., Awaitable[User]]
MakeMerchant = Callable[..., Awaitable[Merchant]]
MakePayment = Callable[..., Awaitable[Payment]]
USER_DAILY_LIMIT = 1_000_000
"""The daily limit of the `user` fixture: room for every payment a test makes."""

_numbers = itertools.count(1)
SANDBOX_BASE_URL = "http://sandbox-gateway"


# --- the sandbox gateway ----------------------------------------------------------------------


Fault = Callable[[httpx.Request], Awaitable[httpx.Response | None]]
"""Looks at a call to the sandbox: raises (as a transport does: `httpx.ConnectError`,
`httpx.ReadTimeout`, ...), returns a response given instead of the sandbox's, or None to let
the call through."""


@dataclass
class FaultyTransport(httpx.AsyncBaseTransport):
    """The ASGI transport onto the sandbox, with faults put in front of it while the test
    wants them. A call a fault stops never reaches the sandbox."""

    inner: httpx.ASGITransport
    faults: list[Fault] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    """`METHOD /path` of every call the services made, stopped or not."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(f"{request.method} {request.url.path}")
        for fault in list(self.faults):
            answer = await fault(request)
            if answer is not None:
                return answer
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def matches(request: httpx.Request, method: str, path_suffix: str) -> bool:
    return request.method == method and request.url.path.endswith(path_suffix)


def raising(exc_type: type[httpx.TransportError], method: str, path_suffix: str = "") -> Fault:
    """A fault: calls `method` on a path ending with `path_suffix` raise `exc_type` (e.g.
    `httpx.ConnectError`: never reached; `httpx.ReadTimeout`: sent, no answer in time)."""

    async def fault(request: httpx.Request) -> httpx.Response | None:
        if matches(request, method, path_suffix):
            raise exc_type(f"{exc_type.__name__} (test fault)", request=request)
        return None

    return fault


def hanging(method: str, path_suffix: str = "") -> Fault:
    """A fault: calls `method` on a path ending with `path_suffix` never get an answer (the
    caller's own deadline, GATEWAY_TIMEOUT_SECONDS, ends them)."""

    async def fault(request: httpx.Request) -> httpx.Response | None:
        if matches(request, method, path_suffix):
            await asyncio.Event().wait()
        return None

    return fault


def answering(status: int, method: str, path_suffix: str = "") -> Fault:
    """A fault: calls `method` on a path ending with `path_suffix` get `status`, empty body."""

    async def fault(request: httpx.Request) -> httpx.Response | None:
        if matches(request, method, path_suffix):
            return httpx.Response(status, request=request)
        return None

    return fault


def answer_lost(sandbox: Sandbox, method: str, path_suffix: str = "") -> Fault:
    """A fault: calls `method` on a path ending with `path_suffix` reach the sandbox, which acts
    on them, but its answer never comes back (`httpx.ReadTimeout`): the gateway did it, the
    caller does not know."""

    async def fault(request: httpx.Request) -> httpx.Response | None:
        if matches(request, method, path_suffix):
            answer = await sandbox.transport.inner.handle_async_request(request)
            await answer.aclose()
            raise httpx.ReadTimeout("answer lost (test fault)", request=request)
        return None

    return fault


@dataclass
class Sandbox:
    """The in-process sandbox gateway of the test's services."""

    app: FastAPI
    transport: FaultyTransport

    @property
    def faults(self) -> list[Fault]:
        return self.transport.faults

    async def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        """A call straight to the sandbox, past the services and past any fault."""
        inner = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=inner, base_url=SANDBOX_BASE_URL) as http:
            return await http.request(method, path, json=body)

    async def charge_of(self, payment_id: str) -> dict[str, Any] | None:
        """The sandbox's own view of a charge (`GET /v1/charges/{paymentId}`), None on 404."""
        response = await self.request("GET", f"/v1/charges/{payment_id}")
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        charge: dict[str, Any] = response.json()
        return charge

    async def stats(self) -> dict[str, int]:
        response = await self.request("GET", "/v1/stats")
        assert response.status_code == 200, response.text
        stats: dict[str, int] = response.json()
        return stats


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def service_settings(
    make_settings: Callable[..., Settings], request: pytest.FixtureRequest
) -> Settings:
    overrides: dict[str, Any] = getattr(request, "param", {})
    return make_settings(**overrides)


@pytest.fixture
def sandbox(service_settings: Settings) -> Sandbox:
    app = create_sandbox_app(
        service_settings.gateway_timeout_seconds, service_settings.reconcile_after_seconds
    )
    return Sandbox(app, FaultyTransport(httpx.ASGITransport(app=app)))


@pytest.fixture
async def services(service_settings: Settings, sandbox: Sandbox) -> AsyncIterator[Services]:
    opened = await open_services(service_settings, Metrics(), sandbox.transport)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
def make_user(services: Services) -> MakeUser:
    async def make(*, daily_limit: int | None = None, **fields: Any) -> User:
        n = next(_numbers)
        now = utcnow()
        values: dict[str, Any] = {
            "id": ids.user_id(),
            "email": f"service-user-{n}@example.com",
            # Not an Argon2 hash, so no password logs in as this user (none of these tests
            # log in; one that does can pass its own `password_hash`).
            "password_hash": "!unusable",
            "name": f"Service User {n}",
            "daily_limit": (
                services.settings.default_daily_limit if daily_limit is None else daily_limit
            ),
            "created_at": now,
            "updated_at": now,
            **fields,
        }
        user = User(**values)
        await users_model.insert(services.database, user)
        return user

    return make


@pytest.fixture
def make_merchant(services: Services) -> MakeMerchant:
    async def make(**fields: Any) -> Merchant:
        n = next(_numbers)
        now = utcnow()
        merchant_id = ids.merchant_id()
        values: dict[str, Any] = {
            "id": merchant_id,
            "name": f"Service Merchant {n}",
            "category": "food",
            "webhook_secret": random_secret("whsec"),
            "api_keys": [issue_key(merchant_id, "default", now).key],
            "created_at": now,
            "updated_at": now,
            **fields,
        }
        merchant = Merchant(**values)
        await merchants_model.insert(services.database, merchant)
        return merchant

    return make


@pytest.fixture
async def user(make_user: MakeUser) -> User:
    """A user with room for every payment a test makes (a module may override it)."""
    return await make_user(daily_limit=USER_DAILY_LIMIT)


@pytest.fixture
async def merchant(make_merchant: MakeMerchant) -> Merchant:
    return await make_merchant()


@pytest.fixture
def make_pending_payment(services: Services) -> MakePayment:
    """A payment as the create flow leaves it just before it asks the gateway: stored
    `pending`, its daily-limit hold taken (for the user's limit) on its business day."""

    async def make(
        user: User,
        merchant: Merchant,
        amount: int = 10_000,
        *,
        at: datetime | None = None,
        hold: bool = True,
        **fields: Any,
    ) -> Payment:
        now = at or utcnow()
        values: dict[str, Any] = {
            "id": ids.payment_id(),
            "user_id": user.id,
            "merchant_id": merchant.id,
            "amount": amount,
            "currency": "KRW",
            "payment_method": "card",
            "product_name": "Coffee beans",
            "status": PaymentStatus.PENDING,
            "idempotency_key": f"service-test-{next(_numbers)}",
            "request_fingerprint": "service-test",
            "hold_day": services.limits.day_of(now),
            "created_at": now,
            "updated_at": now,
            **fields,
        }
        payment = Payment(**values)
        await payments_model.insert(services.database, payment)
        if hold:
            await services.limits.hold(
                user_id=payment.user_id,
                day=payment.hold_day,
                payment_id=payment.id,
                amount=payment.amount,
                limit=user.daily_limit,
            )
        return payment

    return make


# --- a process that dies ----------------------------------------------------------------------


# --- helpers ----------------------------------------------------------------------------------


async def charge_at_gateway(services: Services, payment: Payment) -> GatewayResult:
    """Ask the gateway to charge `payment`, as the create flow does (and a process that died
    afterwards had)."""
    return await services.gateway.charge(
        payment_id=payment.id,
        amount=payment.amount,
        currency=payment.currency,
        payment_method=payment.payment_method,
    )


def reconciler_at(
    services: Services, clock: Callable[[], datetime], worker_id: str = "service-tests"
) -> Reconciler:
    """A reconciler on the services' own parts whose time is `clock` (a `Clock`)."""
    return reconciler_on(services, clock, worker_id)


async def stored(services: Services, payment_id: str) -> Payment:
    payment = await payments_model.find_by_id(services.database, payment_id)
    assert payment is not None, payment_id
    return payment


async def stored_user(services: Services, user_id: str) -> User:
    user = await users_model.find_by_id(services.database, user_id)
    assert user is not None, user_id
    return user


async def forget_idempotency_keys(services: Services) -> int:
    """Drop every Idempotency-Key result and lock from Redis (`idem:*`), as a Redis that lost
    its data would; the number of keys dropped."""
    keys = [key async for key in services.redis.scan_iter(match="idem:*")]
    if keys:
        await services.redis.delete(*keys)
    return len(keys)


async def ledger_of(services: Services, payment_id: str) -> list[LedgerRecord]:
    return await ledger_model.for_payment(services.database, payment_id)


async def events_of(services: Services, payment_id: str) -> list[Event]:
    """The payment's published events (deliverable; drafts are not events yet)."""
    return await events_model.for_payment(services.database, payment_id)


async def drafts_of(services: Services, payment_id: str) -> list[Event]:
    """The payment's unpublished drafts: what a settlement that died half-way left."""
    cursor = services.database[events_model.COLLECTION].find(
        {"paymentId": payment_id, "status": "draft"}
    )
    return [Event.from_mongo(raw) async for raw in cursor]


async def streamed_events(services: Services, payment_id: str) -> list[dict[str, Any]]:
    """The entries of the Redis stream `payments:events` about this payment (the dispatcher
    writes them)."""
    entries: Any = await services.redis.xrange(STREAM)
    return [
        dict(fields)
        for _, fields in entries
        if f'"paymentId":"{payment_id}"' in fields.get("data", "")
    ]


async def reserve_refund(
    services: Services, payment: Payment, amount: int, *, at: datetime | None = None
) -> Refund:
    """A refund as the refund flow leaves it just before it asks the gateway: recorded
    `pending` and its amount reserved on the payment (`refundedAmount`, `pendingRefunds`)."""
    now = at or utcnow()
    refund = Refund(
        id=ids.refund_id(),
        payment_id=payment.id,
        user_id=payment.user_id,
        merchant_id=payment.merchant_id,
        amount=amount,
        reason="Customer returned the item",
        status="pending",
        requested_by=f"merchant:{payment.merchant_id}",
        created_at=now,
        updated_at=now,
    )
    await refunds_model.insert(services.database, refund)
    reserved = await payments_model.update_where(
        services.database,
        payment.id,
        {"status": {"$in": payments_model.REFUNDABLE}},
        {
            "$inc": {"refundedAmount": amount},
            "$push": {
                "pendingRefunds": PendingRefund(refund_id=refund.id, amount=amount).to_mongo()
            },
        },
        now=now,
    )
    assert reserved is not None, "the payment could not be refunded"
    return refund
