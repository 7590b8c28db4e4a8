"""The worker loops: event delivery and reconciliation, until asked to stop.

`payments-api worker` runs them in their own process; `payments-api serve` runs them inside
the API process on the in-memory stand-ins (which no other process can reach) or when
RUN_WORKER=true. On stop they claim nothing new, finish what they hold, and return.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

from payments_api.config.settings import Settings
from payments_api.services.registry import Services, open_services
from payments_api.utils.logger import configure_logging, get_logger
from payments_api.utils.metrics import Metrics
from payments_api.utils.tracing import start_tracing

logger = get_logger("worker")

EVENT_INTERVAL_SECONDS = 1.0
MAX_RECONCILE_INTERVAL_SECONDS = 5.0
MIN_RECONCILE_INTERVAL_SECONDS = 0.5


def reconcile_interval(settings: Settings) -> float:
    """The pause between reconciliation passes: a quarter of RECONCILE_AFTER_SECONDS, between
    0.5 and 5 s. A payment that became due waits at most that for its reversal, well inside the
    few seconds a late charge request may take (the sandbox's `…409` lands 3 s after the
    reconcile delay); and a pass, a handful of queries, runs no more often than that needs
    (5 s with the default 60 s delay; on the in-memory stand-in every query scans)."""
    quarter = settings.reconcile_after_seconds / 4
    return min(MAX_RECONCILE_INTERVAL_SECONDS, max(MIN_RECONCILE_INTERVAL_SECONDS, quarter))


async def _loop(
    name: str, step: Callable[[], Awaitable[int]], interval: float, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            await step()
        except Exception:
            logger.exception("worker loop step failed", loop=name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_loops(services: Services, stop: asyncio.Event) -> None:
    """Dispatch events and reconcile until `stop` is set; each finishes its current pass."""
    logger.info("worker loops started")
    await asyncio.gather(
        _loop("events", services.dispatcher.run_once, EVENT_INTERVAL_SECONDS, stop),
        _loop(
            "reconciliation",
            services.reconciler.run_once,
            reconcile_interval(services.settings),
            stop,
        ),
    )
    logger.info("worker loops stopped")


async def run_worker_process(settings: Settings) -> None:
    """`payments-api worker`: open the services, run the loops until SIGTERM or SIGINT."""
    configure_logging(settings.log_level, settings.app_env)
    tracing = start_tracing(settings, role="worker")  # before any client it instruments exists
    services = await open_services(settings, Metrics())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_loops(services, stop)
    finally:
        await services.aclose()
        if tracing is not None:
            tracing.flush()
