"""The services of one app, built once in the lifespan and reached by the controllers."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from payments_api.config.database import Database
from payments_api.config.settings import Settings
from payments_api.services.auth import AuthService
from payments_api.services.merchants import MerchantService
from payments_api.services.users import UserService
from payments_api.utils.metrics import Metrics


@dataclass(slots=True)
class Services:
    settings: Settings
    database: Database
    redis: Redis
    metrics: Metrics
    auth: AuthService
    users: UserService
    merchants: MerchantService


def build_services(
    settings: Settings, database: Database, redis: Redis, metrics: Metrics
) -> Services:
    return Services(
        settings=settings,
        database=database,
        redis=redis,
        metrics=metrics,
        auth=AuthService(settings, database),
        users=UserService(settings, database),
        merchants=MerchantService(settings, database),
    )
