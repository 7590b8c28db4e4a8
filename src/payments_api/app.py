"""create_app(settings): the lifespan (connect, indexes, bootstrap admin), middleware, routers
and error handlers of one app. No I/O happens before the lifespan starts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from payments_api import __version__
from payments_api.config.settings import Settings
from payments_api.controllers.cached_read import read_prefetch_key
from payments_api.errors import StartupError
from payments_api.middleware.body_limit import BodyLimitMiddleware
from payments_api.middleware.compression import CompressionMiddleware
from payments_api.middleware.edge import EdgeMiddleware
from payments_api.middleware.errors import register_error_handlers
from payments_api.middleware.liveness import LivenessMiddleware
from payments_api.middleware.methods import HeadAsGetMiddleware
from payments_api.middleware.payment_read import CachedPaymentReadMiddleware
from payments_api.middleware.rate_limit import RateLimitMiddleware
from payments_api.middleware.tracing import tracing_middleware
from payments_api.routes import docs, health, openapi, webhook_docs
from payments_api.routes.api import v1
from payments_api.sandbox_gateway.app import create_sandbox_app
from payments_api.services.registry import open_services
from payments_api.utils.logger import configure_logging, get_logger
from payments_api.utils.metrics import Metrics
from payments_api.utils.tracing import Tracing, start_tracing
from payments_api.worker import run_loops

logger = get_logger("app")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
"""What `FastAPI(lifespan=…)` takes: a context around the app's running life."""


_FRAMEWORK_PASS_THROUGH = frozenset(
    {"ServerErrorMiddleware", "ExceptionTelemetryMiddleware", "AppBodyLimitMiddleware"}
)
"""The layers FastAPI and Starlette put outside an app's own middleware, which for this app
only pass an HTTP request on (`PaymentsApp` says why)."""


class PaymentsApp(FastAPI):
    """FastAPI, with each HTTP request handed to the edge (middleware/edge.py) directly.

    Outside an app's own middleware, Starlette and FastAPI put three layers of theirs: a last
    resort 500 for an exception that escapes everything, FastAPI's OpenTelemetry hooks, and its
    request-body limit. For this app each only passes an HTTP request on: the edge answers an
    escaped exception with the contract's 500 itself (and re-raises one it can no longer
    answer, as the last-resort layer would), FastAPI's telemetry is off and no `max_body_size`
    is set (middleware/body_limit.py is the limit). Passing through them and the framework's
    own entry was a twentieth of a cached read's CPU. Lifespan events go the framework's way,
    and so does every request when anything else stands before the edge, or in debug mode.
    """

    edge: EdgeMiddleware | None = None
    stack_of_edge: ASGIApp | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        self.edge = None if self.debug or self.root_path else _edge_beneath(stack)
        self.stack_of_edge = stack
        return stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A coroutine function, not a function returning one like the layers inside: servers
        # tell an ASGI 3 app from an ASGI 2 one by that (uvicorn's `interface="auto"`).
        edge = self.edge
        if (
            edge is None
            or scope["type"] != "http"
            or self.middleware_stack is not self.stack_of_edge
        ):
            await super().__call__(scope, receive, send)  # builds the stack on first use
            return
        scope["app"] = self
        await edge(scope, receive, send)


def _edge_beneath(stack: ASGIApp) -> EdgeMiddleware | None:
    """The edge, when only the framework's pass-through layers stand before it."""
    layer: Any = stack
    while type(layer).__name__ in _FRAMEWORK_PASS_THROUGH:
        layer = layer.app
    return layer if isinstance(layer, EdgeMiddleware) else None


def create_app(settings: Settings | None = None, *, run_worker: bool = False) -> FastAPI:
    """The API. With `run_worker`, the worker loops (event delivery, reconciliation) run in
    this process too: `serve` asks for that on the in-memory stand-ins or RUN_WORKER=true."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.app_env)
    tracing = start_tracing(settings, role="serve")  # before any client it instruments exists
    metrics = Metrics()
    app = PaymentsApp(
        title="payments-api",
        version=__version__,
        description="Payments, refunds and merchants for mobile and web clients.",
        lifespan=_lifespan(settings, metrics, tracing, run_worker=run_worker),
        middleware=[*tracing_middleware(tracing), *_middleware(settings, metrics)],
        # /docs is routes/docs.py's, served from this origin alone (FastAPI's own
        # pages load Swagger UI from a CDN and start it with an inline script).
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url="/openapi.json",
        # A slash redirect is built from `Host`, which the client chose: a trailing slash is a
        # 404 like any other unknown path, and no answer ever names the request's host.
        redirect_slashes=False,
        # FastAPI's own OpenTelemetry hooks, off: with them on every request asks the global
        # providers whether it should trace (and PaymentsApp would bypass them); traces,
        # when on, come from the ASGI instrumentation (middleware/tracing.py).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.started_at = time.monotonic()
    register_error_handlers(app)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(v1.router)
    webhook_docs.install(app)
    openapi.install(app)
    return app


def _lifespan(
    settings: Settings, metrics: Metrics, tracing: Tracing | None, *, run_worker: bool
) -> Lifespan:
    """Open the services (and with `run_worker` start the worker loops) when the app starts;
    on shutdown stop the loops, let them finish their pass, and close the services."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            services = await open_services(settings, metrics, _sandbox_transport(app, settings))
        except StartupError as exc:
            logger.error("start-up failed", reason=str(exc))
            raise
        app.state.services = services
        stop = asyncio.Event()
        worker: asyncio.Task[None] | None = None
        try:
            await services.users.ensure_bootstrap_admin()
            if run_worker:
                worker = asyncio.create_task(run_loops(services, stop))
            logger.info(
                "payments-api started",
                environment=settings.app_env,
                gateway=settings.gateway_url or "in-process sandbox",
                worker="in-process" if run_worker else "separate",
            )
            yield
        finally:
            stop.set()
            if worker is not None:
                await worker
            await services.aclose()
            logger.info("payments-api stopped")
            if tracing is not None:
                tracing.flush()

    return lifespan


def _middleware(settings: Settings, metrics: Metrics) -> list[Middleware]:
    """The ASGI middleware stack, outermost first: the order a request passes through them.
    Each one wraps those after it (the edge, outermost, sees every answer, the rate limiter's
    and the body limit's included), so the order is behaviour."""
    return [
        Middleware(
            EdgeMiddleware,
            metrics=metrics,
            allowed_origins=settings.allowed_origins,
            trusted_proxies=settings.trusted_proxies,
        ),
        Middleware(HeadAsGetMiddleware),
        Middleware(CompressionMiddleware),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        Middleware(LivenessMiddleware),
        Middleware(RateLimitMiddleware, item=settings.rate_limit_item, prefetch=read_prefetch_key),
        Middleware(CachedPaymentReadMiddleware),
    ]


def _sandbox_transport(app: FastAPI, settings: Settings) -> httpx.AsyncBaseTransport | None:
    """Without GATEWAY_URL, the sandbox gateway in-process through an ASGI transport (the same
    client code runs either way; the sandbox is kept on `app.state.sandbox` for tests)."""
    if settings.gateway_url:
        return None
    sandbox = create_sandbox_app(settings.gateway_timeout_seconds, settings.reconcile_after_seconds)
    app.state.sandbox = sandbox
    logger.info("using the in-process sandbox gateway")
    return httpx.ASGITransport(app=sandbox)


def create_app_from_env() -> FastAPI:
    """The uvicorn factory for `--workers N`: each worker reads the same environment (real
    servers only, so the worker loops run here only with RUN_WORKER=true)."""
    settings = Settings()
    return create_app(settings, run_worker=settings.run_worker)
