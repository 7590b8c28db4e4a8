"""create_app(settings): the lifespan (connect, indexes, bootstrap admin), middleware, routers
and error handlers of one app. No I/O happens before the lifespan starts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.middleware import Middleware

from payments_api import __version__
from payments_api.config.database import Database
from payments_api.config.redis import create_redis, wait_for_redis
from payments_api.config.settings import Settings
from payments_api.errors import StartupError
from payments_api.middleware.body_limit import BodyLimitMiddleware
from payments_api.middleware.compression import CompressionMiddleware
from payments_api.middleware.cors import CORSMiddleware
from payments_api.middleware.errors import UnhandledErrorMiddleware, register_error_handlers
from payments_api.middleware.logging import AccessLogMiddleware
from payments_api.middleware.rate_limit import RateLimitMiddleware
from payments_api.middleware.request_context import RequestContextMiddleware
from payments_api.middleware.security_headers import SecurityHeadersMiddleware
from payments_api.routes import health
from payments_api.routes.api import v1
from payments_api.sandbox_gateway.app import create_sandbox_app
from payments_api.services.gateway import GatewayClient
from payments_api.services.registry import build_services
from payments_api.utils.logger import configure_logging, get_logger
from payments_api.utils.metrics import Metrics

logger = get_logger("app")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.app_env)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(settings)
        redis = create_redis(settings)
        gateway = _create_gateway(app, settings)
        try:
            await database.connect()
            await wait_for_redis(redis, settings)
            await database.create_indexes()
            services = build_services(settings, database, redis, metrics, gateway)
            app.state.services = services
            await services.users.ensure_bootstrap_admin()
            logger.info(
                "payments-api started",
                environment=settings.app_env,
                gateway=settings.gateway_url or "in-process sandbox",
            )
            yield
        except StartupError as exc:
            logger.error("start-up failed", reason=str(exc))
            raise
        finally:
            await gateway.aclose()
            await redis.aclose()
            database.close()
            logger.info("payments-api stopped")

    # Outermost first: the order a request passes through them.
    middleware = [
        Middleware(RequestContextMiddleware, trusted_proxies=settings.trusted_proxies),
        Middleware(AccessLogMiddleware, metrics=metrics),
        Middleware(SecurityHeadersMiddleware),
        Middleware(CORSMiddleware, allowed_origins=settings.allowed_origins),
        Middleware(CompressionMiddleware),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        Middleware(RateLimitMiddleware, item=settings.rate_limit_item),
        Middleware(UnhandledErrorMiddleware),
    ]
    app = FastAPI(
        title="payments-api",
        version=__version__,
        description="Payments, refunds and merchants for mobile and web clients.",
        lifespan=lifespan,
        middleware=middleware,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    app.state.started_at = time.monotonic()
    register_error_handlers(app)
    app.include_router(health.router)
    app.include_router(v1.router)
    return app


def _create_gateway(app: FastAPI, settings: Settings) -> GatewayClient:
    """The gateway at GATEWAY_URL, or the sandbox in-process through an ASGI transport (the
    same client code runs either way; the sandbox is kept on `app.state.sandbox` for tests)."""
    if settings.gateway_url:
        return GatewayClient(settings)
    sandbox = create_sandbox_app(settings.gateway_timeout_seconds)
    app.state.sandbox = sandbox
    logger.info("using the in-process sandbox gateway")
    return GatewayClient(settings, transport=httpx.ASGITransport(app=sandbox))


def create_app_from_env() -> FastAPI:
    """The uvicorn factory for `--workers N`: each worker reads the same environment."""
    return create_app(Settings())
