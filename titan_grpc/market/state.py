"""The read path: every market-data read goes through here, so many clients cost the
venue one request.

A read is answered, in this order, from
1. a live feed open for that market (the stream hubs keep the newest quote and book),
   when its data is fresh enough for the caller;
2. the cache, when the last venue answer is fresh enough;
3. one venue request shared by every caller that arrives while it is in flight
   (single flight), sent in the budget's read lane without waiting.

``received_time`` on every answer is when TITAN received the data from the venue. When
the read lane is spent or the venue is suspect, a caller who left ``max_age`` to the
server default gets the freshest data held, with a note giving its age; a caller who
asked for a ``max_age`` explicitly gets the error instead (RESOURCE_EXHAUSTED with
RetryInfo, or UNAVAILABLE). Markets read often are promoted to a live feed, and dropped
when nobody has read them for a while.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from titan_grpc.domain import OrderBook, Quote, RecentTrades, Symbol, Ticker
from titan_grpc.errors import ExchangeUnavailable, RateLimited, VenueTimeout
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.market.hub import StreamHub, Subscription
from titan_grpc.net.ratelimit import Lane, budget_lane

log = logging.getLogger(__name__)

T = TypeVar("T", Ticker, OrderBook, RecentTrades)
D = TypeVar("D")
QuoteKey = tuple[str, Symbol]
BookKey = tuple[str, Symbol, int]

# Depths a promoted book feed is kept at (the smallest that covers the reads).
BOOK_FEED_DEPTHS = (20, 100, 1000)
# Depths and trade counts asked of a venue: a read takes the smallest that covers it and
# is answered from a slice, so callers' choices cannot multiply the cache (or the venue
# requests) beyond a few entries per market.
BOOK_FETCH_DEPTHS = (5, 20, 100, 500, 1000)
TRADE_FETCH_LIMITS = (50, 100, 500, 1000)
MAX_DERIVED_ANSWERS = 4096


@dataclass(frozen=True, slots=True)
class ReadPolicy:
    default_max_age_seconds: float = 1.0
    # More than this many reads of one market within promote_window_seconds open a live
    # feed for it; 0 never promotes.
    promote_reads: int = 20
    promote_window_seconds: float = 10.0
    # A promoted feed nobody read for this long is closed.
    idle_seconds: float = 60.0
    # A live quote answers GetMarketData with the 24h figures of a ticker this recent.
    ticker_stats_max_age_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Freshness:
    """The oldest data a caller accepts; ``explicit`` when the caller set it."""

    max_age_seconds: float
    explicit: bool = False


class VenueWatch(Protocol):
    """What the read path needs from the health monitor."""

    def is_suspect(self, exchange: str) -> bool: ...

    def suspect(self, exchange: str, reason: str) -> None: ...


ReadObserver = Callable[[str, str, str], None]  # (exchange, kind, result)


class _Slot(Generic[T]):
    __slots__ = ("inflight", "received", "value")

    def __init__(self) -> None:
        self.value: T | None = None
        self.received = 0.0  # the value's received_time, as a timestamp
        self.inflight: asyncio.Task[T] | None = None


@dataclass(slots=True)
class _LiveTicker:
    """A ticker answered from a live feed: the statistics and quote it merges, when that
    quote was received (a timestamp), and the merged answer."""

    stats: Ticker
    quote: Quote
    quote_received: float
    answer: Ticker


class _Promotion:
    __slots__ = ("last_read", "reads", "subscription", "window_start")

    def __init__(self, now: float) -> None:
        self.window_start = now
        self.reads = 0
        self.last_read = now
        self.subscription: Subscription[Any, Any] | None = None


def _received(value: Ticker | OrderBook | RecentTrades | Quote) -> float:
    return value.received_time.timestamp()


class MarketState:
    def __init__(
        self,
        quote_hub: StreamHub[QuoteKey, Quote],
        book_hub: StreamHub[BookKey, OrderBook],
        policy: ReadPolicy,
        *,
        watch: VenueWatch | None = None,
        observe: ReadObserver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._quote_hub = quote_hub
        self._book_hub = book_hub
        self.policy = policy
        self._watch = watch
        self._observe = observe
        self._clock = clock
        self._tickers: dict[QuoteKey, _Slot[Ticker]] = {}
        self._books: dict[BookKey, _Slot[OrderBook]] = {}
        self._trades: dict[tuple[str, Symbol, int], _Slot[RecentTrades]] = {}
        # Answers derived from held data (book slices) and tickers merged with a live
        # quote: built once per data version and shared.
        self._derived_answers: dict[Hashable, tuple[object, Any]] = {}
        self._live_tickers: dict[QuoteKey, _LiveTicker] = {}
        self._quote_promotions: dict[QuoteKey, _Promotion] = {}
        self._book_promotions: dict[BookKey, _Promotion] = {}
        self.default_freshness = Freshness(policy.default_max_age_seconds)

    def freshness(self, max_age_seconds: float | None) -> Freshness:
        if max_age_seconds is None:
            return self.default_freshness
        return Freshness(max_age_seconds, explicit=True)

    # ---- reads ---------------------------------------------------------------------

    async def ticker(
        self, backend: ExchangeBackend, symbol: Symbol, freshness: Freshness
    ) -> Ticker:
        held = self.held_ticker(backend, symbol, freshness)
        if held is not None:
            return held
        return await self.fetched_ticker(backend, symbol, freshness)

    def held_ticker(
        self, backend: ExchangeBackend, symbol: Symbol, freshness: Freshness
    ) -> Ticker | None:
        """The ticker when one held is fresh enough for ``freshness`` (merged with the live
        feed's quote, or the venue's last answer), counting the read and, on a hit, the
        cache result; None when ``fetched_ticker`` must ask the venue. A hit thus needs no
        coroutine of the read path's."""
        key = (backend.name, symbol)
        started = self._clock()
        oldest = started - freshness.max_age_seconds
        slot = self._ticker_slot(key)
        quote = self._quote_hub.latest(key)
        # Every read (a hit above all) costs each caller: the usual paths below are kept
        # free of further calls where it costs no clarity (bench/NOTES.md).
        promotion = self._quote_promotions.get(key)
        if promotion is not None and promotion.subscription is not None:
            promotion.last_read = started  # promoted already: only the last read matters
        else:
            self._count_read(self._quote_promotions, key, started, self._promote_quotes)
        if quote is not None:
            live = self._live_tickers.get(key)
            if live is None or live.quote is not quote or live.stats is not slot.value:
                live = self._with_quote(key, slot.value, quote)
            if (
                live is not None
                and live.quote_received >= oldest
                and slot.received >= started - self.policy.ticker_stats_max_age_seconds
            ):
                if self._observe is not None:
                    self._observe(backend.name, "ticker", "feed")
                return live.answer
        return self._held(slot, backend.name, "ticker", oldest)

    async def fetched_ticker(
        self, backend: ExchangeBackend, symbol: Symbol, freshness: Freshness
    ) -> Ticker:
        """The ticker once ``held_ticker`` returned None for this same read, and only
        then (the read was counted there, and the live feed looked at): one venue request
        shared by every caller, or held data marked stale when the venue cannot answer;
        it records the cache result (miss, shared or stale)."""
        slot = self._ticker_slot((backend.name, symbol))
        oldest = self._clock() - freshness.max_age_seconds
        return await self._read(
            slot, backend, "ticker", oldest, freshness, lambda: backend.ticker(symbol)
        )

    def _ticker_slot(self, key: QuoteKey) -> _Slot[Ticker]:
        slot = self._tickers.get(key)
        if slot is None:
            slot = self._tickers[key] = _Slot()
        return slot

    async def order_book(
        self, backend: ExchangeBackend, symbol: Symbol, depth: int, freshness: Freshness
    ) -> OrderBook:
        started = self._clock()
        oldest = started - freshness.max_age_seconds
        feed_depth = next((d for d in BOOK_FEED_DEPTHS if d >= depth), depth)
        self._count_read(
            self._book_promotions, (backend.name, symbol, feed_depth), started, self._promote_book
        )
        live = self._live_book(backend.name, symbol, depth, oldest)
        if live is not None:
            self._note(backend.name, "book", "feed")
            return live
        fetch_depth = next((d for d in BOOK_FETCH_DEPTHS if d >= depth), depth)
        key = (backend.name, symbol, fetch_depth)
        slot = self._books.get(key)
        if slot is None:
            slot = self._books[key] = _Slot()
        book = await self._read(
            slot,
            backend,
            "book",
            oldest,
            freshness,
            lambda: backend.order_book(symbol, fetch_depth),
        )
        return self._book_slice(book, depth)

    async def recent_trades(
        self, backend: ExchangeBackend, symbol: Symbol, limit: int, freshness: Freshness
    ) -> RecentTrades:
        fetch_limit = next((n for n in TRADE_FETCH_LIMITS if n >= limit), limit)
        key = (backend.name, symbol, fetch_limit)
        slot = self._trades.get(key)
        if slot is None:
            slot = self._trades[key] = _Slot()
        oldest = self._clock() - freshness.max_age_seconds
        trades = await self._read(
            slot,
            backend,
            "trades",
            oldest,
            freshness,
            lambda: backend.recent_trades(symbol, fetch_limit),
        )
        if len(trades.trades) <= limit:
            return trades
        return self._derived(
            ("trades", key, limit),
            trades,
            lambda: dataclasses.replace(trades, trades=trades.trades[:limit]),
        )

    # ---- the shared venue request ------------------------------------------------------

    async def _read(
        self,
        slot: _Slot[T],
        backend: ExchangeBackend,
        kind: str,
        oldest: float,
        freshness: Freshness,
        fetch: Callable[[], Awaitable[T]],
    ) -> T:
        held = self._held(slot, backend.name, kind, oldest)
        if held is not None:
            return held
        if self._watch is not None and self._watch.is_suspect(backend.name):
            # Neither a new request nor joining one still hanging: one deadline was enough.
            unavailable = ExchangeUnavailable(
                f"{backend.name}: not answering (a request timed out); probing until "
                "it answers again",
                exchange=backend.name,
            )
            return self._held_or_raise(slot, backend, kind, freshness, unavailable)
        task = slot.inflight
        if task is None:
            task = asyncio.create_task(self._fetch(slot, backend, fetch))
            slot.inflight = task
            self._note(backend.name, kind, "miss")
        else:
            self._note(backend.name, kind, "shared")
        try:
            # Shielded: a caller that gives up (deadline) leaves the request running for
            # the others and for the cache.
            return await asyncio.shield(task)
        except TimeoutError as error:
            self._suspect(backend.name, "timed out")
            return self._held_or_raise(slot, backend, kind, freshness, error)
        except asyncio.CancelledError:
            if not task.done():
                self._suspect(backend.name, "no answer within the caller's deadline")
            raise
        except (RateLimited, ExchangeUnavailable) as error:
            return self._held_or_raise(slot, backend, kind, freshness, error)

    def _held(self, slot: _Slot[T], exchange: str, kind: str, oldest: float) -> T | None:
        """The slot's value when it was received at or after ``oldest`` (a cache hit)."""
        held = slot.value
        if held is not None and slot.received >= oldest:
            observe = self._observe
            if observe is not None:
                observe(exchange, kind, "hit")
            return held
        return None

    async def _fetch(
        self, slot: _Slot[T], backend: ExchangeBackend, fetch: Callable[[], Awaitable[T]]
    ) -> T:
        try:
            # Reads never wait for budget: the caller is better served by held data.
            with budget_lane(Lane.READ, may_wait=False):
                value = await fetch()
        except VenueTimeout as error:
            self._suspect(backend.name, error.message)
            raise
        finally:
            slot.inflight = None
        slot.value, slot.received = value, _received(value)
        return value

    def _held_or_raise(
        self,
        slot: _Slot[T],
        backend: ExchangeBackend,
        kind: str,
        freshness: Freshness,
        error: Exception,
    ) -> T:
        held = slot.value
        if held is None or freshness.explicit:
            raise error
        age = max(0.0, self._clock() - _received(held))
        reason = getattr(error, "message", "") or type(error).__name__
        self._note(backend.name, kind, "stale")
        note = f"stale: {age:.1f}s old ({reason})"
        return dataclasses.replace(held, note=f"{held.note}; {note}" if held.note else note)

    # ---- live feeds ---------------------------------------------------------------------

    def _with_quote(self, key: QuoteKey, stats: Ticker | None, quote: Quote) -> _LiveTicker | None:
        """The ticker from the venue's statistics and the feed's newest quote, built once
        per pair and kept (None without statistics yet)."""
        if stats is None:
            return None
        answer = dataclasses.replace(
            stats,
            bid=quote.bid,
            bid_size=quote.bid_size,
            ask=quote.ask,
            ask_size=quote.ask_size,
            last=quote.last if quote.last is not None else stats.last,
            venue_time=quote.venue_time,
            received_time=quote.received_time,
        )
        if len(self._live_tickers) >= MAX_DERIVED_ANSWERS:
            self._live_tickers.clear()
        live = self._live_tickers[key] = _LiveTicker(stats, quote, _received(quote), answer)
        return live

    def _live_book(
        self, exchange: str, symbol: Symbol, depth: int, oldest: float
    ) -> OrderBook | None:
        for feed_depth in BOOK_FEED_DEPTHS:
            if feed_depth < depth:
                continue
            book = self._book_hub.latest((exchange, symbol, feed_depth))
            if book is None or _received(book) < oldest:
                continue
            return self._book_slice(book, depth)
        return None

    def _book_slice(self, book: OrderBook, depth: int) -> OrderBook:
        if len(book.bids) <= depth and len(book.asks) <= depth:
            return book
        return self._derived(
            ("book", book.exchange, book.symbol, depth),
            book,
            lambda: dataclasses.replace(book, bids=book.bids[:depth], asks=book.asks[:depth]),
        )

    def _derived(self, key: Hashable, source: object, build: Callable[[], D]) -> D:
        """An answer derived from ``source`` (a slice), built once per source version."""
        derived = self._derived_answers.get(key)
        if derived is not None and derived[0] is source:
            cached: D = derived[1]
            return cached
        if len(self._derived_answers) >= MAX_DERIVED_ANSWERS:
            self._derived_answers.clear()
        answer = build()
        self._derived_answers[key] = (source, answer)
        return answer

    def _count_read(
        self,
        promotions: dict[Any, _Promotion],
        key: Any,
        now: float,
        promote: Callable[[Any], Subscription[Any, Any]],
    ) -> None:
        if self.policy.promote_reads <= 0:
            return
        promotion = promotions.get(key)
        if promotion is None:
            promotion = promotions[key] = _Promotion(now)
        promotion.last_read = now
        if promotion.subscription is not None:
            return
        if now - promotion.window_start > self.policy.promote_window_seconds:
            promotion.window_start, promotion.reads = now, 0
        promotion.reads += 1
        if promotion.reads > self.policy.promote_reads:
            log.info("market %s read often: promoted to a live feed", key)
            promotion.subscription = promote(key)

    def _promote_quotes(self, key: QuoteKey) -> Subscription[Any, Any]:
        return self._quote_hub.subscribe(key)

    def _promote_book(self, key: BookKey) -> Subscription[Any, Any]:
        return self._book_hub.subscribe(key)

    def drop_idle(self) -> int:
        """Close promoted feeds nobody read for ``idle_seconds``; returns how many."""
        now = self._clock()
        return self._drop_idle(self._quote_promotions, now) + self._drop_idle(
            self._book_promotions, now
        )

    def _drop_idle(self, promotions: dict[Any, _Promotion], now: float) -> int:
        dropped = 0
        for key, promotion in list(promotions.items()):
            idle = now - promotion.last_read
            if idle < self.policy.idle_seconds:
                continue
            if promotion.subscription is not None:
                promotion.subscription.close()
                dropped += 1
                log.info("market %s not read for %.0fs: live feed dropped", key, idle)
            del promotions[key]
        return dropped

    def close(self) -> None:
        """Close every promoted feed (server shutdown)."""
        for promotions in (self._quote_promotions, self._book_promotions):
            for promotion in promotions.values():
                if promotion.subscription is not None:
                    promotion.subscription.close()
            promotions.clear()

    async def run(self, interval_seconds: float = 10.0) -> None:
        """Background upkeep: drop idle promoted feeds."""
        while True:
            await asyncio.sleep(interval_seconds)
            self.drop_idle()

    @property
    def promoted(self) -> list[Any]:
        return [
            key
            for promotions in (self._quote_promotions, self._book_promotions)
            for key, promotion in promotions.items()
            if promotion.subscription is not None
        ]

    def _suspect(self, exchange: str, reason: str) -> None:
        if self._watch is not None:
            self._watch.suspect(exchange, reason)

    def _note(self, exchange: str, kind: str, result: str) -> None:
        if self._observe is not None:
            self._observe(exchange, kind, result)
