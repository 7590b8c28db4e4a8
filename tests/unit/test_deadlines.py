"""SharedDeadlines: `asyncio.timeout()`'s behaviour with one timer per slice of deadlines."""

from __future__ import annotations

import asyncio

import pytest

from payments_api.utils.deadlines import SharedDeadlines

SHORT = 0.1
LONG = 30.0
GUARD = 10.0  # the test's own bound on anything it waits for


async def _overrun(deadlines: SharedDeadlines) -> bool:
    """Whether a block sleeping past its SHORT deadline raised TimeoutError (the test's own
    guard, if the deadline never fires, raises outside the `try`)."""
    async with asyncio.timeout(GUARD):
        try:
            with deadlines.within(SHORT):
                await asyncio.sleep(LONG)
        except TimeoutError:
            return True
    return False


async def test_a_block_that_overruns_raises_timeout_error_after_its_deadline() -> None:
    deadlines = SharedDeadlines()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _overrun(deadlines)
    assert loop.time() - started >= SHORT


async def test_a_block_that_ends_in_time_is_never_cancelled_afterwards() -> None:
    deadlines = SharedDeadlines()
    with deadlines.within(SHORT):
        await asyncio.sleep(0)
    await asyncio.sleep(SHORT + 3 * deadlines.granularity)  # past the group's timer
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_a_cancellation_from_elsewhere_is_not_turned_into_a_timeout() -> None:
    deadlines = SharedDeadlines()
    entered = asyncio.Event()

    async def bounded() -> None:
        with deadlines.within(LONG):
            entered.set()
            await asyncio.sleep(LONG)

    task = asyncio.create_task(bounded())
    await asyncio.wait_for(entered.wait(), GUARD)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_outer_timeout_still_fires_through_a_longer_shared_deadline() -> None:
    deadlines = SharedDeadlines()

    async def block() -> None:
        async with asyncio.timeout(SHORT):
            with deadlines.within(LONG):
                await asyncio.sleep(LONG)

    with pytest.raises(TimeoutError):
        await block()


async def test_a_shared_deadline_inside_a_longer_timeout_leaves_it_armed() -> None:
    """The inner deadline's cancellation is taken back: the task is not left cancelling, and
    the outer timeout goes on to fire on its own."""
    deadlines = SharedDeadlines()
    task = asyncio.current_task()
    assert task is not None
    outer_fired = False
    try:
        async with asyncio.timeout(GUARD) as outer:
            assert await _overrun(deadlines)
            assert task.cancelling() == 0
            assert not outer.expired()
            outer.reschedule(asyncio.get_running_loop().time() + SHORT)
            await asyncio.sleep(LONG)
    except TimeoutError:
        outer_fired = True
    assert outer_fired


async def test_another_exception_the_block_raises_when_cancelled_is_kept() -> None:
    """As with `asyncio.timeout()`: only the CancelledError becomes a TimeoutError."""
    deadlines = SharedDeadlines()

    async def block() -> None:
        async with asyncio.timeout(GUARD):
            with deadlines.within(SHORT):
                try:
                    await asyncio.sleep(LONG)
                except asyncio.CancelledError:
                    raise LookupError("the block's own") from None

    with pytest.raises(LookupError):
        await block()


async def test_blocks_of_one_slice_expire_alone_their_neighbours_that_finished() -> None:
    """Many blocks share a group; only those still running at its deadline time out."""
    deadlines = SharedDeadlines()

    async def block(overruns: bool) -> str:
        try:
            with deadlines.within(SHORT):
                await asyncio.sleep(LONG if overruns else 0)
        except TimeoutError:
            return "timed out"
        await asyncio.sleep(SHORT + 3 * deadlines.granularity)  # alive past the deadline
        return "done"

    async with asyncio.timeout(GUARD):
        outcomes = await asyncio.gather(*(block(index % 2 == 0) for index in range(40)))
    assert outcomes == ["timed out" if index % 2 == 0 else "done" for index in range(40)]


def test_deadlines_work_on_each_new_event_loop() -> None:
    """One process-wide instance serves the loops that come one after another (tests do).
    A block that ended in time on the first loop leaves its group's timer there; a block of
    the same slice on the next loop must not join that group, whose timer never fires here.
    (A coarse slice puts both blocks in the same one.)"""
    deadlines = SharedDeadlines(granularity=1.0)

    async def in_time() -> None:
        with deadlines.within(SHORT):
            await asyncio.sleep(0)

    asyncio.run(in_time())
    assert asyncio.run(_overrun(deadlines))
