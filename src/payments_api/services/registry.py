"""The services of one app, built once in the lifespan and reached by the controllers."""

from __future__ import annotations

from dataclasses import dataclass

from limits.aio.storage import RedisStorage
from redis.asyncio import Redis

from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.middleware.rate_limit import create_rate_limit_storage
from payments_api.services.auth import AuthService
from payments_api.services.daily_limits import DailyLimitService
from payments_api.services.gateway import GatewayClient
from payments_api.services.idempotency import IdempotencyService
from payments_api.services.merchants import MerchantService
from payments_api.services.payment_cache import PaymentCache
from payments_api.services.payments import PaymentService
from payments_api.services.refunds import RefundService
from payments_api.services.settlement import SettlementService
from payments_api.services.stats import StatsService
from payments_api.services.users import UserService
from payments_api.utils.cache import RedisScripts
from payments_api.utils.metrics import Metrics

IDEMPOTENCY_LOCK_MARGIN_SECONDS = 30
"""How long an in-flight lock outlives the gateway timeout before another request may try."""


@dataclass(slots=True)
class Services:
    settings: Settings
    database: Database
    redis: Redis
    metrics: Metrics
    gateway: GatewayClient
    auth: AuthService
    users: UserService
    merchants: MerchantService
    limits: DailyLimitService
    stats: StatsService
    settlement: SettlementService
    payments: PaymentService
    refunds: RefundService
    rate_limit_storage: RedisStorage


def build_services(
    settings: Settings,
    database: Database,
    redis: Redis,
    metrics: Metrics,
    gateway: GatewayClient,
) -> Services:
    lock_ttl_ms = int((settings.gateway_timeout_seconds + IDEMPOTENCY_LOCK_MARGIN_SECONDS) * 1000)
    idempotency = IdempotencyService(redis, lock_ttl_ms)
    cache = PaymentCache(redis, RedisScripts(redis))
    limits = DailyLimitService(settings, database)
    stats = StatsService(redis, database, limits)
    settlement = SettlementService(database, limits, cache, stats, metrics)
    return Services(
        settings=settings,
        database=database,
        redis=redis,
        metrics=metrics,
        gateway=gateway,
        auth=AuthService(settings, database),
        users=UserService(settings, database, stats),
        merchants=MerchantService(settings, database),
        limits=limits,
        stats=stats,
        settlement=settlement,
        payments=PaymentService(
            settings, database, gateway, idempotency, limits, cache, stats, settlement
        ),
        refunds=RefundService(database, gateway, idempotency, cache),
        rate_limit_storage=create_rate_limit_storage(redis),
    )
