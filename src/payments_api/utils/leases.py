"""Keeping a short lease alive while its work runs.

Leases (events, reconciliation) and idempotency locks are short, so that what a process that
died was holding is taken over soon; a live holder renews its lease in the background while
it works. `LeaseKeeper` runs that renewal: one `renew()` call every `every` seconds until

- the work ends: `stop()`, the end of an `async with` block, or the end of the task that
  started it (cancelled included);
- the lease is lost: `renew()` answers False (someone else holds it now, or it is gone);
- `max_seconds` have passed since it started, whatever the work and its caller do: work that
  runs past that loses its lease, and so can be taken over, rather than holding it for ever.

A renewal that fails (a store that does not answer in time) is logged and tried again at the
next beat: the lease is still ours until it expires, and the next renewal may get through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from payments_api.utils.logger import get_logger

logger = get_logger("leases")

Renew = Callable[[], Awaitable[bool]]
"""Extend the lease if we still hold it; True when it was extended."""


class LeaseKeeper:
    def __init__(
        self, renew: Renew, *, every: float, max_seconds: float, what: str, **log_fields: Any
    ) -> None:
        if every <= 0 or max_seconds <= 0:
            raise ValueError("every and max_seconds must be positive")
        self._renew = renew
        self.every = every
        self.max_seconds = max_seconds
        self.what = what
        self._log_fields = log_fields
        self._task: asyncio.Task[None] | None = None
        self._owner: asyncio.Task[Any] | None = None
        self.renewals = 0
        """How many renewals went through."""
        self.lost = False
        """True once a renewal found the lease held by someone else or gone."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> Self:
        """Start renewing (in a task of its own), bound to the current task: when that task
        ends, so does the renewal."""
        if self._task is not None:
            raise RuntimeError("a LeaseKeeper starts once")
        self._task = asyncio.create_task(self._run(), name=f"renew {self.what}")
        self._owner = asyncio.current_task()
        if self._owner is not None:
            self._owner.add_done_callback(self._owner_done)
        return self

    async def stop(self) -> None:
        """Stop renewing; returns once no renewal is running any more."""
        if self._owner is not None:
            self._owner.remove_done_callback(self._owner_done)
            self._owner = None
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        # Not `await task`: that would swallow a cancellation of our own caller.
        await asyncio.wait({task})

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def _owner_done(self, _owner: asyncio.Task[Any]) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.max_seconds
        while True:
            left = give_up_at - loop.time()
            if left <= 0:
                logger.warning(
                    "work outlived its lease's longest hold; no longer renewed",
                    lease=self.what,
                    maxSeconds=self.max_seconds,
                    **self._log_fields,
                )
                return
            if left < self.every:
                await asyncio.sleep(left)
                continue
            await asyncio.sleep(self.every)
            try:
                async with asyncio.timeout(self.every):
                    held = await self._renew()
            except Exception as exc:
                logger.warning(
                    "lease renewal failed; trying again",
                    lease=self.what,
                    error=type(exc).__name__,
                    **self._log_fields,
                )
                continue
            if not held:
                self.lost = True
                logger.info(
                    "lease no longer ours; renewal stopped", lease=self.what, **self._log_fields
                )
                return
            self.renewals += 1
