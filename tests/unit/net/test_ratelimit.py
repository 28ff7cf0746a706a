"""The window limiter with an injected clock and sleep: no real waiting."""

from __future__ import annotations

import asyncio

import pytest

from titan_grpc.errors import RateLimited
from titan_grpc.net.ratelimit import Budgets, Lane, LaneShares, WindowRateLimiter, budget_lane


class FakeTime:
    def __init__(self, start: float) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(time: FakeTime, limit: int = 10, max_wait: float = 120.0) -> WindowRateLimiter:
    return WindowRateLimiter(
        "venue", limit, 60.0, clock=time.clock, sleep=time.sleep, max_wait_seconds=max_wait
    )


async def test_budget_is_spent_then_waits_for_the_next_window() -> None:
    time = FakeTime(600.0)  # start of a minute
    budget = limiter(time)
    for _ in range(5):
        await budget.acquire(2)
    assert budget.used == 10 and time.slept == []
    await budget.acquire(1)
    assert time.slept == [60.0]  # waited exactly to the next window
    assert budget.used == 1


async def test_venue_usage_header_corrects_our_count_upwards_only() -> None:
    time = FakeTime(630.0)
    budget = limiter(time)
    await budget.acquire(3)
    budget.observe_used(8)  # another process on the same IP used weight too
    assert budget.used == 8
    budget.observe_used(2)
    assert budget.used == 8
    await budget.acquire(3)
    assert time.slept == [30.0]


async def test_retry_after_refuses_everything_until_it_passes() -> None:
    time = FakeTime(600.0)
    budget = limiter(time)
    budget.block_for(12.5)
    with pytest.raises(RateLimited) as caught:
        await budget.acquire(1)
    assert caught.value.retry_after == pytest.approx(12.5)
    time.now += 12.5
    await budget.acquire(1)
    assert time.slept == []


async def test_refuses_instead_of_waiting_too_long() -> None:
    time = FakeTime(600.0)
    budget = limiter(time, max_wait=5.0)
    await budget.acquire(10)
    with pytest.raises(RateLimited) as caught:
        await budget.acquire(1)
    assert caught.value.retry_after == pytest.approx(60.0)
    assert time.slept == []
    with pytest.raises(RateLimited):
        await budget.acquire(11)  # larger than the whole budget


def laned(time: FakeTime, limit: int = 100, reserve: float = 0.2) -> WindowRateLimiter:
    return WindowRateLimiter(
        "venue",
        limit,
        60.0,
        clock=time.clock,
        sleep=time.sleep,
        max_wait_seconds=120.0,
        shares=LaneShares.from_reserve(reserve),
    )


async def test_reads_never_spend_the_trading_reserve_and_places_leave_cancels_theirs() -> None:
    time = FakeTime(600.0)
    budget = laned(time)
    with budget_lane(Lane.READ, may_wait=False):
        for _ in range(80):
            await budget.acquire(1)
        with pytest.raises(RateLimited) as refused:
            await budget.acquire(1)  # the read lane is spent: refused at once, no wait
    assert refused.value.retry_after == pytest.approx(60.0) and time.slept == []
    with budget_lane(Lane.PLACE):
        for _ in range(15):
            await budget.acquire(1)  # places use what reads may not, up to 95 %
    with budget_lane(Lane.CANCEL):
        for _ in range(5):
            await budget.acquire(1)  # the last 5 % is for cancels only
    assert budget.used == 100 and time.slept == []


class SteppedTime(FakeTime):
    """Time moves only when the test moves it; sleeping just yields to other tasks."""

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


async def test_a_waiting_cancel_goes_before_a_waiting_read() -> None:
    time = SteppedTime(600.0)
    budget = laned(time, limit=10, reserve=0.0)
    for _ in range(10):
        await budget.acquire(1)
    order: list[str] = []

    async def spend(lane: Lane, name: str) -> None:
        with budget_lane(lane):
            await budget.acquire(10)
            order.append(name)

    # Both wait for the next window, the read first; only one of them fits in it.
    read = asyncio.create_task(spend(Lane.READ, "read"))
    for _ in range(3):
        await asyncio.sleep(0)
    cancel = asyncio.create_task(spend(Lane.CANCEL, "cancel"))
    for _ in range(3):
        await asyncio.sleep(0)
    time.now += 60.0
    await cancel
    assert order == ["cancel"]
    read.cancel()


async def test_after_our_window_rolls_we_do_not_burst_past_the_venues_last_header() -> None:
    time = FakeTime(659.0)
    budget = limiter(time, limit=100)
    await budget.acquire(10)
    budget.observe_used(90)  # the venue counted 90 (other clients on our IP too)
    time.now = 660.5  # our minute rolled; the venue's (its clock lags ours) has not yet
    assert budget.used == 90  # still the venue's figure, not 0
    await budget.acquire(10)
    assert time.slept == []
    with pytest.raises(RateLimited):
        budget.max_wait_seconds = 0.0
        await budget.acquire(5)
    budget.observe_used(12)  # the venue rolled too: its count restarted
    assert budget.used == 12


async def test_processes_sharing_an_account_without_a_store_each_get_their_part() -> None:
    time = FakeTime(600.0)
    budget = Budgets(split=3).window("venue", "weight", 6000, 60.0, clock=time.clock)
    assert budget.limit == 2000
    budget.set_limit(1200)  # the venue publishes a lower limit
    assert budget.limit == 400
    budget.observe_used(900)  # the venue counts every process on our IP
    assert budget.used == 300
