"""The read path with a counting stand-in venue and an injected clock: single flight,
freshness, held data when the venue cannot be asked, suspicion, live feeds, promotion."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any, cast

import pytest

from titan_grpc.domain import FeedInterrupted, OrderBook, PriceLevel, Quote, Symbol, Ticker
from titan_grpc.errors import ExchangeUnavailable, RateLimited
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.market.hub import StreamHub
from titan_grpc.market.state import Freshness, MarketState, ReadPolicy

BTC = Symbol("BTC", "USDT")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def at(self) -> datetime:
        return datetime.fromtimestamp(self.now, tz=UTC)


class Venue:
    """Answers tickers stamped with the clock; counts requests; can be held or fail."""

    name = "binance"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.requests = 0
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None
        self.depths: list[int] = []

    async def ticker(self, symbol: Symbol) -> Ticker:
        self.requests += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return ticker(self.clock.at(), bid=D(self.requests))

    async def order_book(self, symbol: Symbol, depth: int) -> OrderBook:
        self.requests += 1
        self.depths.append(depth)
        levels = tuple(PriceLevel(D(100 - n), D(1)) for n in range(depth))
        asks = tuple(PriceLevel(D(101 + n), D(1)) for n in range(depth))
        return OrderBook(
            "binance", symbol, "BTCUSDT", levels, asks, 1, simulated=False,
            venue_time=None, received_time=self.clock.at(),
        )  # fmt: skip


def ticker(at: datetime, bid: D) -> Ticker:
    return Ticker(
        "binance", BTC, "BTCUSDT", bid, D(1), bid + 1, D(1), bid, None, None, None,
        D(10), None, None, simulated=False, venue_time=None, received_time=at,
    )  # fmt: skip


class Watch:
    def __init__(self) -> None:
        self.suspects: set[str] = set()

    def is_suspect(self, exchange: str) -> bool:
        return exchange in self.suspects

    def suspect(self, exchange: str, reason: str) -> None:
        self.suspects.add(exchange)


class Quotes:
    """A quote feed the test pushes to."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Quote | FeedInterrupted] = asyncio.Queue()
        self.opened = 0

    async def open(self, key: tuple[str, Symbol]) -> AsyncIterator[Quote | FeedInterrupted]:
        self.opened += 1
        while True:
            yield await self.queue.get()


def live_quote(clock: Clock) -> Quote:
    """A live quote (bid 7, ask 8, last 7) received now."""
    return Quote(
        "binance", BTC, "BTCUSDT", D(7), D(2), D(8), D(2), D(7), simulated=False,
        venue_time=None, received_time=clock.at(),
    )  # fmt: skip


async def deliver(quotes: Quotes, quote: Quote) -> None:
    """Push ``quote`` into the feed and let the hub hand it on."""
    quotes.queue.put_nowait(quote)
    for _ in range(5):
        await asyncio.sleep(0)


def build(
    clock: Clock, quotes: Quotes | None = None, **policy: Any
) -> tuple[MarketState, Watch, StreamHub[Any, Any]]:
    quotes = quotes or Quotes()
    quote_hub: StreamHub[Any, Any] = StreamHub(quotes.open)
    book_hub: StreamHub[Any, OrderBook] = StreamHub(lambda key: quotes.open(key))
    watch = Watch()
    state = MarketState(quote_hub, book_hub, ReadPolicy(**policy), watch=watch, clock=clock)
    return state, watch, quote_hub


async def test_concurrent_reads_share_one_request_and_fresh_reads_are_cached() -> None:
    clock = Clock()
    venue = Venue(clock)
    state, _, _ = build(clock, promote_reads=0)
    backend = cast(ExchangeBackend, venue)
    venue.gate = asyncio.Event()
    reads = [asyncio.create_task(state.ticker(backend, BTC, Freshness(1.0))) for _ in range(50)]
    await asyncio.sleep(0)
    venue.gate.set()
    answers = await asyncio.gather(*reads)
    assert venue.requests == 1 and len({id(a) for a in answers}) == 1
    clock.now += 0.5
    assert await state.ticker(backend, BTC, Freshness(1.0)) is answers[0]  # fresh enough
    clock.now += 1.0
    newer = await state.ticker(backend, BTC, Freshness(1.0))
    assert venue.requests == 2 and newer.received_time == clock.at()


async def test_held_data_is_served_marked_unless_the_caller_set_max_age() -> None:
    clock = Clock()
    venue = Venue(clock)
    state, _, _ = build(clock, promote_reads=0)
    backend = cast(ExchangeBackend, venue)
    first = await state.ticker(backend, BTC, Freshness(1.0))
    clock.now += 5.0
    venue.error = RateLimited("binance: read budget spent", retry_after=3.0)
    held = await state.ticker(backend, BTC, Freshness(1.0))
    assert held.received_time == first.received_time  # the truth about its age
    assert held.note.startswith("stale: 5.0s old")
    with pytest.raises(RateLimited):
        await state.ticker(backend, BTC, Freshness(1.0, explicit=True))


async def test_a_suspect_venue_is_not_asked_again() -> None:
    clock = Clock()
    venue = Venue(clock)
    state, watch, _ = build(clock, promote_reads=0)
    backend = cast(ExchangeBackend, venue)
    await state.ticker(backend, BTC, Freshness(1.0))
    watch.suspects.add("binance")
    clock.now += 2.0
    held = await state.ticker(backend, BTC, Freshness(1.0))
    assert "not answering" in held.note and venue.requests == 1
    with pytest.raises(ExchangeUnavailable):
        await state.ticker(backend, BTC, Freshness(1.0, explicit=True))


async def test_a_caller_that_gives_up_makes_the_venue_suspect_and_leaves_the_request() -> None:
    clock = Clock()
    venue = Venue(clock)
    state, watch, _ = build(clock, promote_reads=0)
    backend = cast(ExchangeBackend, venue)
    venue.gate = asyncio.Event()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(state.ticker(backend, BTC, Freshness(1.0)), 0.01)
    assert watch.is_suspect("binance")
    venue.gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert venue.requests == 1  # the shared request finished for the cache


async def test_a_market_read_often_is_promoted_to_its_live_feed_and_dropped_when_idle() -> None:
    clock = Clock()
    venue = Venue(clock)
    quotes = Quotes()
    state, _, hub = build(clock, quotes, promote_reads=3, idle_seconds=60.0)
    backend = cast(ExchangeBackend, venue)
    for _ in range(4):
        await state.ticker(backend, BTC, Freshness(10.0))
    assert state.promoted == [("binance", BTC)] and hub.upstream_count == 1
    live = live_quote(clock)
    await deliver(quotes, live)
    clock.now += 2.0  # the cached ticker is 2 s old; the live quote too, but it is live
    answer = await state.ticker(backend, BTC, Freshness(3.0))
    assert (answer.bid, answer.ask, answer.volume_24h) == (D(7), D(8), D(10))
    assert answer.received_time == live.received_time and venue.requests == 1
    assert await state.ticker(backend, BTC, Freshness(3.0)) is answer  # built once, shared
    newer = dataclasses.replace(live, bid=D("7.5"), received_time=clock.at())
    await deliver(quotes, newer)
    answer = await state.ticker(backend, BTC, Freshness(3.0))
    assert (answer.bid, answer.received_time) == (D("7.5"), newer.received_time)
    clock.now += 61.0
    assert state.drop_idle() == 1 and state.promoted == []
    for _ in range(5):
        await asyncio.sleep(0)
    assert hub.upstream_count == 0


async def test_a_live_ticker_follows_its_statistics_and_its_quotes_age() -> None:
    clock = Clock()
    venue = Venue(clock)
    quotes = Quotes()
    state, _, _ = build(clock, quotes, promote_reads=1, ticker_stats_max_age_seconds=30.0)
    backend = cast(ExchangeBackend, venue)
    for _ in range(2):
        await state.ticker(backend, BTC, Freshness(10.0))
    live = live_quote(clock)
    await deliver(quotes, live)
    merged = await state.ticker(backend, BTC, Freshness(10.0))
    assert merged.bid == D(7) and venue.requests == 1
    clock.now += 31.0  # statistics and quote 31 s old: too old for a 10 s max_age
    plain = await state.ticker(backend, BTC, Freshness(10.0))
    assert (plain.bid, venue.requests) == (D(2), 2)  # the venue's own, not the old quote
    # New statistics with the same quote (31 s old, within 40 s): merged again, not the
    # answer built from the old statistics.
    again = await state.ticker(backend, BTC, Freshness(40.0))
    assert again.bid == D(7) and again is not merged and venue.requests == 2
    # Fresh statistics, but a quote older than the caller's max_age: not merged.
    assert (await state.ticker(backend, BTC, Freshness(10.0))).bid == D(2)


async def test_reads_keep_a_promoted_feed_open() -> None:
    clock = Clock()
    venue = Venue(clock)
    state, _, hub = build(clock, promote_reads=1, idle_seconds=60.0)
    backend = cast(ExchangeBackend, venue)
    for _ in range(2):
        await state.ticker(backend, BTC, Freshness(10.0))
    assert state.promoted == [("binance", BTC)]
    clock.now += 59.0
    await state.ticker(backend, BTC, Freshness(100.0))
    clock.now += 59.0  # 118 s after promotion, 59 s after the last read
    assert state.drop_idle() == 0 and state.promoted == [("binance", BTC)]
    assert hub.upstream_count == 1  # the feed itself stays open
    clock.now += 2.0
    assert state.drop_idle() == 1


async def test_callers_choosing_any_depth_cost_a_few_venue_depths_and_get_exact_slices() -> None:
    clock = Clock()
    venue = Venue(clock)
    state, _, _ = build(clock, promote_reads=0)
    backend = cast(ExchangeBackend, venue)
    for depth in range(1, 1001):
        book = await state.order_book(backend, BTC, depth, Freshness(60.0))
        assert len(book.bids) == len(book.asks) == depth
    assert venue.depths == [5, 20, 100, 500, 1000]  # one request per depth the venue offers


async def test_a_read_is_counted_once_and_records_one_cache_result() -> None:
    # held_ticker counts the read (promotion) and records a hit; when it holds nothing,
    # fetched_ticker asks the venue and records the miss without counting the read again.
    clock = Clock()
    venue = Venue(clock)
    quotes = Quotes()
    results: list[str] = []
    state = MarketState(
        StreamHub(quotes.open),
        StreamHub(quotes.open),
        ReadPolicy(promote_reads=2),
        watch=Watch(),
        observe=lambda _venue, _kind, result: results.append(result),
        clock=clock,
    )
    backend = cast(ExchangeBackend, venue)
    assert state.held_ticker(backend, BTC, Freshness(1.0)) is None
    assert results == [] and venue.requests == 0
    first = await state.fetched_ticker(backend, BTC, Freshness(1.0))
    assert results == ["miss"] and venue.requests == 1
    assert state.held_ticker(backend, BTC, Freshness(1.0)) is first
    assert results == ["miss", "hit"] and state.promoted == []  # two reads so far
    assert await state.ticker(backend, BTC, Freshness(1.0)) is first
    assert results == ["miss", "hit", "hit"] and state.promoted == [("binance", BTC)]
    await deliver(quotes, live_quote(clock))
    merged = state.held_ticker(backend, BTC, Freshness(1.0))
    assert merged is not None and merged.bid == D(7) and results[-1] == "feed"
    assert venue.requests == 1
