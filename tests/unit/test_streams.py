import asyncio
from collections.abc import AsyncIterator

import pytest

from titan_grpc.market.streams import merge


async def counting(prefix: str, count: int, closed: list[str]) -> AsyncIterator[str]:
    try:
        for index in range(count):
            yield f"{prefix}{index}"
        await asyncio.Event().wait()  # then idle forever, like a live feed
    finally:
        closed.append(prefix)


async def test_merge_interleaves_and_closes_every_source_when_stopped() -> None:
    stop, closed = asyncio.Event(), []
    seen = []
    async for tagged in merge([counting("a", 3, closed), counting("b", 2, closed)], stop):
        seen.append((tagged.source, tagged.item))
        if len(seen) == 5:
            stop.set()
    assert sorted(seen) == [(0, "a0"), (0, "a1"), (0, "a2"), (1, "b0"), (1, "b1")]
    assert sorted(closed) == ["a", "b"]


async def test_merge_reraises_a_source_error_and_cleans_up() -> None:
    closed: list[str] = []

    async def broken() -> AsyncIterator[str]:
        yield "x"
        raise ValueError("upstream broke")

    tasks_before = len(asyncio.all_tasks())
    with pytest.raises(ValueError, match="upstream broke"):
        async for _ in merge([broken(), counting("c", 0, closed)], asyncio.Event()):
            pass
    assert closed == ["c"]
    assert len(asyncio.all_tasks()) == tasks_before


async def test_consumer_leaving_early_releases_all_tasks() -> None:
    closed: list[str] = []
    tasks_before = len(asyncio.all_tasks())
    stream = merge([counting("a", 100, closed)], asyncio.Event())
    async for _ in stream:
        break
    await stream.aclose()
    assert closed == ["a"]
    assert len(asyncio.all_tasks()) == tasks_before
