"""The services of one process, opened once (in the app's lifespan, or by the worker command)
and reached by the controllers and the worker loops."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx

from payments_api.config.database import Database
from payments_api.config.redis import RedisClient, create_redis, wait_for_redis
from payments_api.config.settings import Settings
from payments_api.models import merchant as merchant_store
from payments_api.services.api_keys import ApiKeyService
from payments_api.services.auth import AuthService
from payments_api.services.cancellations import CancelService
from payments_api.services.captures import CaptureService
from payments_api.services.credentials import Credentials
from payments_api.services.daily_limits import DailyLimitService
from payments_api.services.event_access import EventService
from payments_api.services.events import EventDispatcher
from payments_api.services.gateway import GatewayClient
from payments_api.services.idempotency import IdempotencyService
from payments_api.services.merchants import MerchantService
from payments_api.services.payment_cache import PaymentCache
from payments_api.services.payment_history import PaymentHistoryService
from payments_api.services.payment_reads import PaymentReadService
from payments_api.services.payment_steps import PaymentSteps
from payments_api.services.payments import PaymentService
from payments_api.services.rate_limits import RateLimiter
from payments_api.services.reconciliation import Reconciler
from payments_api.services.refund_settlement import RefundSettlement
from payments_api.services.refunds import RefundService
from payments_api.services.settlement import SettlementService
from payments_api.services.stats import StatsService
from payments_api.services.users import UserService
from payments_api.services.voids import VoidService
from payments_api.services.webhooks import create_webhook_client
from payments_api.utils.metrics import Metrics

IDEMPOTENCY_LOCK_MARGIN_SECONDS = 30
"""How long past the gateway timeout a live request may keep renewing its idempotency lock."""


@dataclass(slots=True)
class Services:
    settings: Settings
    database: Database
    redis: RedisClient
    metrics: Metrics
    gateway: GatewayClient
    auth: AuthService
    users: UserService
    merchants: MerchantService
    api_keys: ApiKeyService
    limits: DailyLimitService
    stats: StatsService
    settlement: SettlementService
    payments: PaymentService
    payment_reads: PaymentReadService
    payment_history: PaymentHistoryService
    captures: CaptureService
    voids: VoidService
    cancellations: CancelService
    refunds: RefundService
    refund_settlement: RefundSettlement
    rate_limiter: RateLimiter
    events: EventService
    dispatcher: EventDispatcher
    reconciler: Reconciler
    webhooks: httpx.AsyncClient

    async def aclose(self) -> None:
        """Close every connection the services hold."""
        await self.webhooks.aclose()
        await self.gateway.aclose()
        await self.redis.aclose()
        self.database.close()


def _idempotency(settings: Settings, redis: RedisClient) -> IdempotencyService:
    return IdempotencyService(
        redis,
        max_hold_seconds=settings.gateway_timeout_seconds + IDEMPOTENCY_LOCK_MARGIN_SECONDS,
    )


def _settlement(
    settings: Settings, database: Database, steps: PaymentSteps, metrics: Metrics
) -> SettlementService:
    return SettlementService(
        database,
        steps,
        metrics,
        first_recheck_after=timedelta(seconds=settings.reconcile_after_seconds),
        authorization_ttl=timedelta(seconds=settings.authorization_ttl_seconds),
    )


def build_services(
    settings: Settings,
    database: Database,
    redis: RedisClient,
    metrics: Metrics,
    gateway: GatewayClient,
) -> Services:
    idempotency = _idempotency(settings, redis)
    cache = PaymentCache(redis)
    limits = DailyLimitService(settings, database)
    credentials = Credentials(database)
    stats = StatsService(redis, database, limits)
    steps = PaymentSteps(database, limits, cache)
    settlement = _settlement(settings, database, steps, metrics)
    reads = PaymentReadService(database, cache)
    captures = CaptureService(database, gateway, idempotency, reads, steps, metrics)
    voids = VoidService(database, gateway, steps, metrics)
    cancellations = CancelService(database, gateway, limits, cache, reads, voids)
    refund_settlement = RefundSettlement(database, cache)
    webhooks = create_webhook_client()
    return Services(
        settings=settings,
        database=database,
        redis=redis,
        metrics=metrics,
        gateway=gateway,
        auth=AuthService(settings, database, credentials),
        users=UserService(settings, database, stats, credentials),
        merchants=MerchantService(settings, database, credentials),
        api_keys=ApiKeyService(database, credentials),
        limits=limits,
        stats=stats,
        settlement=settlement,
        payments=PaymentService(
            settings, database, gateway, idempotency, limits, cache, settlement, credentials
        ),
        payment_reads=reads,
        payment_history=PaymentHistoryService(database),
        captures=captures,
        voids=voids,
        cancellations=cancellations,
        refunds=RefundService(database, gateway, idempotency, refund_settlement, reads),
        refund_settlement=refund_settlement,
        rate_limiter=RateLimiter(redis, settings.rate_limit_item),
        events=EventService(database),
        dispatcher=EventDispatcher(settings, database, redis, webhooks, metrics),
        reconciler=Reconciler(
            settings,
            database,
            gateway,
            settlement,
            cancellations,
            refund_settlement,
            captures,
            voids,
            metrics,
        ),
        webhooks=webhooks,
    )


async def open_services(
    settings: Settings,
    metrics: Metrics,
    gateway_transport: httpx.AsyncBaseTransport | None = None,
) -> Services:
    """Connect (waiting at most 10 s for each configured server), create the indexes, build
    the services. `gateway_transport` reaches an in-process gateway (the sandbox)."""
    database = Database(settings)
    redis = create_redis(settings)
    gateway = GatewayClient(settings, transport=gateway_transport)
    try:
        await database.connect()
        await wait_for_redis(redis, settings)
        await database.drop_retired_indexes()
        await merchant_store.adopt_legacy_keys(database)
        await database.create_indexes()
    except BaseException:
        await gateway.aclose()
        await redis.aclose()
        database.close()
        raise
    return build_services(settings, database, redis, metrics, gateway)
