"""The window limiter with an injected clock and sleep: no real waiting."""

from __future__ import annotations

import pytest

from titan_grpc.errors import RateLimited
from titan_grpc.net.ratelimit import WindowRateLimiter


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
