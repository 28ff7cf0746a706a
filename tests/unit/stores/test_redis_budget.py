"""Venue budgets in a real Redis, shared by several "processes" (one client each)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from titan_grpc.errors import RateLimited
from titan_grpc.net.ratelimit import Lane, LaneShares, budget_lane
from titan_grpc.stores.redis_budget import RedisBudgets, open_redis_budgets

KEYS = {"binance": "key-of-account-a"}


@pytest.fixture
async def processes(clean_redis_url: str) -> AsyncIterator[list[RedisBudgets]]:
    """Three budget factories on their own connections, as three processes would have."""
    opened = [
        await open_redis_budgets(clean_redis_url, LaneShares.from_reserve(0.2), api_keys=dict(KEYS))
        for _ in range(3)
    ]
    try:
        yield opened
    finally:
        for budgets in opened:
            await budgets.close()


async def test_processes_share_one_window_and_reads_never_take_the_trading_reserve(
    processes: list[RedisBudgets],
) -> None:
    limiters = [p.window("binance", "weight", 100, 60.0) for p in processes]
    granted = 0
    with budget_lane(Lane.READ, may_wait=False):
        for index in range(200):
            try:
                await limiters[index % 3].acquire(1)
                granted += 1
            except RateLimited:
                break
    # 80 % of 100 across all three (a minute boundary passing mid-test may add a window).
    assert 80 <= granted <= 160
    with budget_lane(Lane.PLACE, may_wait=False):
        await limiters[1].acquire(10)  # placements still have their share
    with budget_lane(Lane.CANCEL, may_wait=False):
        await limiters[2].acquire(5)  # and cancels theirs


async def test_a_usage_header_and_a_retry_after_are_written_back_for_every_process(
    processes: list[RedisBudgets],
) -> None:
    first, second, _ = (p.window("binance", "weight", 100, 60.0) for p in processes)
    first.observe_used(100)  # the venue says our IP spent it all
    await processes[0].settle()
    with budget_lane(Lane.CANCEL, may_wait=False), pytest.raises(RateLimited):
        await second.acquire(1)
    first.block_for(30.0)  # the venue answered 429 with Retry-After: 30
    await processes[0].settle()
    with budget_lane(Lane.CANCEL), pytest.raises(RateLimited) as refused:
        await second.acquire(1)
    assert "back off" in refused.value.message and refused.value.retry_after > 25


async def test_a_rate_bucket_is_shared_and_other_keys_are_not(
    processes: list[RedisBudgets], clean_redis_url: str
) -> None:
    buckets = [p.bucket("binance", "private", 0.001, 10) for p in processes]
    granted = 0
    with budget_lane(Lane.READ, may_wait=False):
        for index in range(30):
            try:
                await buckets[index % 3].acquire(1)
                granted += 1
            except RateLimited:
                break
    assert granted == 8  # 80 % of a burst of 10 across all three, refilling at 0.001/s
    other = await open_redis_budgets(
        clean_redis_url, LaneShares.from_reserve(0.2), api_keys={"binance": "another-key"}
    )
    try:
        with budget_lane(Lane.READ, may_wait=False):
            await other.bucket("binance", "private", 0.001, 10).acquire(1)  # its own budget
    finally:
        await other.close()
