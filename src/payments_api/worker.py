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

logger = get_logger("worker")

EVENT_INTERVAL_SECONDS = 1.0
RECONCILE_INTERVAL_SECONDS = 1.0
"""A pass finds nothing to do in a few indexed queries; once a second keeps a payment that
became due (RECONCILE_AFTER_SECONDS) from waiting long for its reversal or settlement."""


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
        _loop("reconciliation", services.reconciler.run_once, RECONCILE_INTERVAL_SECONDS, stop),
    )
    logger.info("worker loops stopped")


async def run_worker_process(settings: Settings) -> None:
    """`payments-api worker`: open the services, run the loops until SIGTERM or SIGINT."""
    configure_logging(settings.log_level, settings.app_env)
    services = await open_services(settings, Metrics())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_loops(services, stop)
    finally:
        await services.aclose()
