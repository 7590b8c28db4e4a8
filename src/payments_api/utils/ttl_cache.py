"""A small in-process cache whose entries are trusted for a fixed number of seconds.

Concurrent misses of one key share one load (the first caller's), so an entry that runs out
under load costs one read, not one per waiting request. The cache is bounded: when full it
starts again empty, which costs reads, never correctness.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and self.clock() < entry[0]:
            return entry[1]
        task = self._loading.get(key)
        if task is None:
            # A task of its own, so a caller that is cancelled does not cancel the others' load.
            task = asyncio.ensure_future(load())
            self._loading[key] = task
            task.add_done_callback(lambda done: self._loaded(key, done))
        return await asyncio.shield(task)

    def _loaded(self, key: K, task: asyncio.Future[V]) -> None:
        if self._loading.get(key) is not task:
            return  # forgotten while it loaded: what it read may be older than the change
        del self._loading[key]
        if not task.cancelled() and task.exception() is None:
            self._store(key, task.result())

    def _store(self, key: K, value: V) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (self.clock() + self.ttl_seconds, value)

    def forget(self, key: K) -> None:
        """Drop what is known of `key`, and what a load in flight would bring."""
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()
