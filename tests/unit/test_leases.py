"""LeaseKeeper: renews while the work runs, and stops — when the work ends, when the lease is
lost, when its caller is cancelled, and after its longest hold whatever the caller does."""

from __future__ import annotations

import asyncio

import pytest

from payments_api.utils.leases import LeaseKeeper

BEAT = 0.02
STEPS = 500
"""Bound on every wait loop below (each step sleeps one BEAT)."""


class Lease:
    """A lease in memory: each renewal counted; it can be taken away or made to fail."""

    def __init__(self) -> None:
        self.renewals = 0
        self.held = True
        self.failing = False
        self.hanging = False
        self.slow_to_cancel = False
        self.calls = 0

    async def renew(self) -> bool:
        self.calls += 1
        if self.slow_to_cancel:
            await self._hang_then_clean_up()
        if self.hanging:
            await asyncio.sleep(3600)
        if self.failing:
            raise ConnectionError("store down")
        if self.held:
            self.renewals += 1
        return self.held

    async def _hang_then_clean_up(self) -> None:
        """Hang; once cancelled, take a while (deaf to further cancels) before ending."""
        try:
            await asyncio.sleep(3600)
        finally:
            loop = asyncio.get_running_loop()
            end = loop.time() + BEAT * 10
            while loop.time() < end:
                try:
                    await asyncio.sleep(end - loop.time())
                except asyncio.CancelledError:
                    continue


async def wait_until(predicate: object, steps: int = STEPS) -> bool:
    assert callable(predicate)
    for _ in range(steps):
        if predicate():
            return True
        await asyncio.sleep(BEAT)
    return bool(predicate())


def keeper(lease: Lease, *, max_seconds: float = 60.0) -> LeaseKeeper:
    return LeaseKeeper(lease.renew, every=BEAT, max_seconds=max_seconds, what="test lease")


async def test_renews_while_the_work_runs_and_not_after_it_ends() -> None:
    lease = Lease()
    async with keeper(lease) as keeping:
        assert await wait_until(lambda: lease.renewals >= 3)
        assert keeping.running
    assert not keeping.running
    after = lease.renewals
    await asyncio.sleep(BEAT * 10)
    assert lease.renewals == after


async def test_stops_at_its_longest_hold_though_the_work_goes_on() -> None:
    lease = Lease()
    async with keeper(lease, max_seconds=BEAT * 5) as keeping:
        assert await wait_until(lambda: not keeping.running)
        stopped_at = lease.renewals
        await asyncio.sleep(BEAT * 10)  # the work is still running here
        assert lease.renewals == stopped_at
    assert stopped_at <= 5  # each renewal comes a full beat after the one before
    assert not keeping.lost


async def test_stops_when_the_lease_is_no_longer_ours() -> None:
    lease = Lease()
    async with keeper(lease) as keeping:
        assert await wait_until(lambda: lease.renewals >= 1)
        lease.held = False
        assert await wait_until(lambda: not keeping.running)
        assert keeping.lost


async def test_a_failed_renewal_is_tried_again() -> None:
    lease = Lease()
    lease.failing = True
    async with keeper(lease) as keeping:
        await asyncio.sleep(BEAT * 5)
        assert keeping.running
        assert lease.renewals == 0
        lease.failing = False
        assert await wait_until(lambda: lease.renewals >= 1)


async def test_a_renewal_that_hangs_is_cut_short_and_tried_again() -> None:
    lease = Lease()
    lease.hanging = True
    async with keeper(lease) as keeping:
        await asyncio.sleep(BEAT * 5)
        lease.hanging = False
        assert await wait_until(lambda: lease.renewals >= 1)
        assert keeping.running


async def test_ends_with_the_task_that_started_it_even_without_stop() -> None:
    """A caller that starts renewing and is cancelled before it could stop (a request whose
    client went away) does not leave the renewal running."""
    lease = Lease()
    started = asyncio.Event()
    keeping = keeper(lease)

    async def request() -> None:
        keeping.start()
        started.set()
        await asyncio.sleep(3600)  # the work, never finished

    task = asyncio.create_task(request())
    await started.wait()
    assert await wait_until(lambda: lease.renewals >= 1)
    task.cancel()
    assert await wait_until(lambda: not keeping.running)
    after = lease.renewals
    await asyncio.sleep(BEAT * 10)
    assert lease.renewals == after


async def test_stopping_does_not_swallow_a_cancellation_of_its_caller() -> None:
    """A caller cancelled while stop() waits for the renewal to end is still cancelled."""
    lease = Lease()
    lease.slow_to_cancel = True
    stopping = asyncio.Event()
    finished = False

    async def work() -> None:
        nonlocal finished
        keeping = LeaseKeeper(lease.renew, every=BEAT, max_seconds=60, what="test").start()
        assert await wait_until(lambda: lease.calls >= 1)
        stopping.set()
        await keeping.stop()
        finished = True

    task = asyncio.create_task(work())
    await stopping.wait()
    await asyncio.sleep(BEAT)  # inside stop(), waiting for the renewal's clean-up
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not finished


def test_refuses_a_beat_or_a_longest_hold_that_is_not_positive() -> None:
    lease = Lease()
    with pytest.raises(ValueError, match="positive"):
        LeaseKeeper(lease.renew, every=0, max_seconds=1, what="x")
    with pytest.raises(ValueError, match="positive"):
        LeaseKeeper(lease.renew, every=1, max_seconds=0, what="x")
