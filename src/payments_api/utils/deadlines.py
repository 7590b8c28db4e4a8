"""Deadlines for many short awaits that almost never overrun: one timer per slice of time
instead of one per await.

`asyncio.timeout()` arms a loop timer on entry and cancels it on exit: 6 µs under uvloop, 3% of
a cached read, for a Redis command's deadline that fires once in a blue moon. `SharedDeadlines`
puts every block whose deadline falls in the same `granularity` slice (50 ms) in one group with
one timer; entering and leaving a block is a set insertion and removal. A deadline fires between
its `seconds` and `seconds + granularity` after the block began.

The semantics are `asyncio.timeout()`'s: when the group's timer fires, each task still inside a
block of the group is cancelled; the block then raises `TimeoutError` (from the
`CancelledError`) unless the task was also cancelled from elsewhere, in which case the
cancellation goes on. A timer runs only while the tasks are suspended, and a block leaves its
group the moment it ends, so a task is never cancelled outside its block.
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

DEFAULT_GRANULARITY_SECONDS = 0.05


class SharedDeadlines:
    """`with deadlines.within(seconds):` bounds the block like `async with asyncio.timeout()`.

    A plain context manager, as anyio's `fail_after` is: entering and leaving await nothing,
    and two coroutines fewer per block are part of the saving."""

    def __init__(self, granularity: float = DEFAULT_GRANULARITY_SECONDS) -> None:
        self.granularity = granularity
        self._loop: asyncio.AbstractEventLoop | None = None
        self._groups: dict[int, set[Deadline]] = {}
        """Per slice, the blocks whose deadline falls in it (one timer each)."""

    def within(self, seconds: float) -> Deadline:
        return Deadline(self, seconds)

    def _join(self, block: Deadline, seconds: float) -> set[Deadline]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # another loop (a test's): its groups start afresh
            self._loop = loop
            self._groups = {}
        slot = math.ceil((loop.time() + seconds) / self.granularity)
        group = self._groups.get(slot)
        if group is None:
            group = self._groups[slot] = set()
            loop.call_at(slot * self.granularity, self._expire, slot, group)
        group.add(block)
        return group

    def _expire(self, slot: int, group: set[Deadline]) -> None:
        if self._groups.get(slot) is group:
            del self._groups[slot]
        for block in group:
            block.expired = True
            block.task.cancel()
        group.clear()


class Deadline:
    """One bounded block (a context manager, entered once, inside a task)."""

    __slots__ = ("_cancelling", "_deadlines", "_group", "_seconds", "expired", "task")

    def __init__(self, deadlines: SharedDeadlines, seconds: float) -> None:
        self._deadlines = deadlines
        self._seconds = seconds
        self._group: set[Deadline] | None = None
        self._cancelling = 0
        self.expired = False
        self.task: asyncio.Task[object]

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline needs a task to cancel")
        self.task = task
        self._cancelling = task.cancelling()
        self._group = self._deadlines._join(self, self._seconds)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._group is not None:
            self._group.discard(self)
            self._group = None
        # uncancel() is called whatever the exception: the cancellation was ours.
        if (
            self.expired
            and self.task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc
