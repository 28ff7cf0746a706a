"""The market layer's book keeper over a scripted venue feed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from decimal import Decimal as D
from typing import Any

import pytest

from titan_grpc.domain import BookDiff, BookSnapshot, FeedInterrupted, OrderBook, PriceLevel, Symbol
from titan_grpc.market.live_book import BookOutOfSync, ResyncBudget, watch_book

SYMBOL = Symbol("BTC", "USDT")


def lv(price: str, qty: str) -> PriceLevel:
    return PriceLevel(D(price), D(qty))


def diff(
    first: int, last: int, bids: Sequence[PriceLevel] = (), asks: Sequence[PriceLevel] = ()
) -> BookDiff:
    return BookDiff(first, last, tuple(bids), tuple(asks), None)


class ScriptedFeed:
    venue_symbol, note = "BTCUSDT", ""

    def __init__(self, events: list[Any], snapshots: list[BookSnapshot]) -> None:
        self.events, self.snapshots = events, snapshots
        self.resyncs = 0

    async def updates(self) -> AsyncIterator[Any]:
        for event in self.events:
            yield event

    async def resync(self) -> BookSnapshot:
        self.resyncs += 1
        return self.snapshots.pop(0)


class Backend:
    name = "binance"

    def __init__(self, feed: ScriptedFeed) -> None:
        self.feed = feed

    async def book_feed(self, symbol: Symbol) -> ScriptedFeed:
        return self.feed


async def run(feed: ScriptedFeed) -> list[OrderBook | FeedInterrupted]:
    return [item async for item in watch_book(Backend(feed), SYMBOL, 5)]  # type: ignore[arg-type]


SNAP_10 = BookSnapshot((lv("100", "1"),), (lv("101", "1"),), 10, None)


async def test_gap_interrupts_then_realigns_from_a_snapshot() -> None:
    later = BookSnapshot((lv("100", "2"),), (lv("101", "1"),), 14, None)
    feed = ScriptedFeed(
        [
            SNAP_10,
            diff(11, 11, [lv("99", "3")]),
            diff(13, 13, [lv("98", "1")]),
            diff(14, 15, [lv("97", "1")]),
        ],
        [later],
    )
    items = await run(feed)
    kinds = [type(item).__name__ for item in items]
    assert kinds == ["OrderBook", "OrderBook", "FeedInterrupted", "OrderBook"]
    assert "expected 12, got 13" in items[2].reason  # type: ignore[union-attr]
    final = items[-1]
    assert isinstance(final, OrderBook) and final.sequence == 15
    assert final.bids == (lv("100", "2"), lv("97", "1"))
    assert feed.resyncs == 1


async def test_a_crossed_book_is_never_served() -> None:
    fixed = BookSnapshot((lv("100", "1"),), (lv("102", "1"),), 20, None)
    feed = ScriptedFeed(
        [SNAP_10, diff(11, 11, [lv("101.5", "1")]), diff(21, 21, [lv("99", "1")])], [fixed]
    )
    items = await run(feed)
    assert [type(item).__name__ for item in items] == ["OrderBook", "FeedInterrupted", "OrderBook"]
    for item in items:
        if isinstance(item, OrderBook):
            assert item.bids[0].price < item.asks[0].price


async def test_snapshots_that_keep_lagging_fail_the_feed() -> None:
    stale = [BookSnapshot((lv("100", "1"),), (lv("101", "1"),), 5, None) for _ in range(4)]
    feed = ScriptedFeed([diff(50, 51), diff(52, 53), diff(54, 55), diff(56, 57)], stale)
    with pytest.raises(BookOutOfSync):
        await run(feed)
    assert feed.resyncs == 3


async def test_a_dropped_connection_interrupts_and_the_next_snapshot_recovers() -> None:
    feed = ScriptedFeed(
        [FeedInterrupted("refused"), SNAP_10, FeedInterrupted("closed"), SNAP_10], []
    )
    items = await run(feed)
    kinds = [type(item).__name__ for item in items]
    assert kinds == ["FeedInterrupted", "OrderBook", "FeedInterrupted", "OrderBook"]


async def test_realignments_wait_for_their_budget() -> None:
    now = [1000.0]
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    # Every other diff skips a sequence number: each gap needs a realignment.
    events: list[Any] = [SNAP_10]
    snapshots = []
    sequence = 10
    for _ in range(4):
        events.append(diff(sequence + 2, sequence + 2))  # gap
        events.append(diff(sequence + 3, sequence + 3))  # realigns, then applies
        snapshots.append(BookSnapshot((lv("100", "1"),), (lv("101", "1"),), sequence + 2, None))
        sequence += 3
    feed = ScriptedFeed(events, snapshots)
    budget = ResyncBudget(count=2, window_seconds=30.0)
    items = [
        item
        async for item in watch_book(
            Backend(feed),  # type: ignore[arg-type]
            SYMBOL,
            5,
            clock=lambda: now[0],
            budget=budget,
            sleep=fake_sleep,
        )
    ]
    assert feed.resyncs == 4
    # Two fit at once; the 3rd waits for the window, and the 4th then fits beside it.
    assert waits == [30.0]
    assert sum(isinstance(item, FeedInterrupted) for item in items) == 4
