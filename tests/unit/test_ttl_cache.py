"""The in-process cache credentials are trusted from: entries run out, one load serves the
callers that missed together, and a forgotten key's load in flight is not kept."""

from __future__ import annotations

import asyncio

from payments_api.utils.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_an_entry_is_served_until_it_runs_out() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(2.0, clock=clock)
    loads: list[int] = []

    async def load() -> int:
        loads.append(1)
        return len(loads)

    assert await cache.get("k", load) == 1
    clock.now = 1.9
    assert await cache.get("k", load) == 1
    clock.now = 2.0
    assert await cache.get("k", load) == 2


async def test_callers_that_miss_together_share_one_load() -> None:
    cache: TtlCache[str, int] = TtlCache(2.0)
    release = asyncio.Event()
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        await release.wait()
        return 7

    waiting = [asyncio.ensure_future(cache.get("k", load)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()

    assert await asyncio.gather(*waiting) == [7] * 5
    assert loads == 1


async def test_a_load_in_flight_when_the_key_is_forgotten_is_not_kept() -> None:
    cache: TtlCache[str, str] = TtlCache(60.0)
    release = asyncio.Event()

    async def stale() -> str:
        await release.wait()
        return "before the change"

    async def fresh() -> str:
        return "after the change"

    in_flight = asyncio.ensure_future(cache.get("k", stale))
    await asyncio.sleep(0)
    cache.forget("k")
    release.set()
    await in_flight

    assert await cache.get("k", fresh) == "after the change"


async def test_a_cancelled_caller_does_not_cancel_the_others_load() -> None:
    cache: TtlCache[str, int] = TtlCache(2.0)
    release = asyncio.Event()

    async def load() -> int:
        await release.wait()
        return 3

    first = asyncio.ensure_future(cache.get("k", load))
    second = asyncio.ensure_future(cache.get("k", load))
    await asyncio.sleep(0)
    first.cancel()
    release.set()

    assert await second == 3
