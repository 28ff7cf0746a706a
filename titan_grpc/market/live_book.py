"""Order books kept live from a venue's raw L2 stream: snapshot + sequenced diffs.

The venue feed (exchanges/*/stream.py) only parses; this module owns the book. A diff
that skips sequence numbers, or a book that comes out crossed, stops the book being
served (subscribers get FeedInterrupted) until it is realigned: from a REST snapshot for
venues whose snapshots carry the stream's sequence (Binance, KuCoin), or from the fresh
in-band snapshot after the feed re-subscribes (Coinbase). A venue whose snapshots keep
lagging the stream fails the feed after a few tries, so the hub reopens it with backoff
instead of spending the venue's request budget on snapshots. Realignments are also
budgeted per feed (``ResyncBudget``): a feed that keeps gapping waits for its budget
rather than spend the venue's request weight (a Binance depth-1000 snapshot weighs 50).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from titan_grpc.domain import BookDiff, BookSnapshot, FeedInterrupted, OrderBook, Symbol
from titan_grpc.exchanges.base import BookFeed, ExchangeBackend
from titan_grpc.market.book import BookUnavailable, DiffResult, LocalBook

log = logging.getLogger(__name__)

MAX_RESYNCS_IN_A_ROW = 3
MAX_BOOK_AGE_SECONDS = 60.0


class BookOutOfSync(ConnectionError):
    """Snapshots keep lagging the stream; the feed is reopened."""


@dataclass(frozen=True, slots=True)
class ResyncBudget:
    """At most ``count`` REST realignments per feed in any ``window_seconds``."""

    count: int = 10
    window_seconds: float = 60.0


async def watch_book(
    backend: ExchangeBackend,
    symbol: Symbol,
    depth: int,
    *,
    clock: Callable[[], float] = time.time,
    budget: ResyncBudget = ResyncBudget(),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[OrderBook | FeedInterrupted]:
    """The top ``depth`` levels whenever they change, kept from the venue's L2 stream."""
    feed = await backend.book_feed(symbol)
    if feed is None:
        async for item in backend.watch_order_book(symbol, depth):
            yield item
        return
    keeper = _BookKeeper(backend.name, symbol, depth, feed, clock, budget, sleep)
    async for item in keeper.run():
        yield item


class _BookKeeper:
    def __init__(
        self,
        exchange: str,
        symbol: Symbol,
        depth: int,
        feed: BookFeed,
        clock: Callable[[], float],
        budget: ResyncBudget,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._exchange, self._symbol, self._depth = exchange, symbol, depth
        self._feed, self._clock = feed, clock
        self._budget, self._sleep = budget, sleep
        self._realigned_at: deque[float] = deque(maxlen=budget.count)
        self._book = LocalBook()
        self._serving = False
        self._last_view: object = None
        self._resyncs_in_a_row = 0

    async def run(self) -> AsyncIterator[OrderBook | FeedInterrupted]:
        async for event in self._feed.updates():
            if isinstance(event, FeedInterrupted):
                # Passed on even before the first book: a subscriber to an unreachable
                # venue learns why nothing comes.
                self._book = LocalBook()
                yield self._interrupted(event.reason)
                continue
            now = self._clock()
            if isinstance(event, BookSnapshot):
                self._book.apply_snapshot(event.bids, event.asks, event.sequence, now)
                self._resyncs_in_a_row = 0
            else:
                applied = await self._apply(event, now)
                if isinstance(applied, FeedInterrupted):
                    yield applied
                    continue
                if not applied:
                    continue
            try:
                bids, asks = self._book.levels(self._depth, now, MAX_BOOK_AGE_SECONDS)
            except BookUnavailable as error:  # crossed: realign before serving again
                if self._serving:
                    yield self._interrupted(str(error))
                continue
            if (bids, asks) == self._last_view:
                continue
            self._last_view, self._serving = (bids, asks), True
            yield OrderBook(
                exchange=self._exchange,
                symbol=self._symbol,
                venue_symbol=self._feed.venue_symbol,
                bids=bids,
                asks=asks,
                sequence=self._book.sequence or 0,
                simulated=False,
                venue_time=event.venue_time,
                received_time=datetime.fromtimestamp(now, tz=UTC),
                note=self._feed.note,
            )

    async def _apply(self, diff: BookDiff, now: float) -> bool | FeedInterrupted:
        """Apply ``diff``: True when there is a (new) book to serve, False when not,
        FeedInterrupted at a sequence gap (the book then realigns on a later diff)."""
        realigned = not self._book.synced
        if realigned and not await self._realign():
            return False  # the venue re-subscribes and sends a snapshot in-band
        result = self._book.apply_diff(
            diff.first_sequence, diff.last_sequence, diff.bids, diff.asks, now
        )
        if result is DiffResult.GAP:
            if realigned:
                return False  # the snapshot is older than the stream: the next diff retries
            expected = (self._book.sequence or 0) + 1
            reason = f"sequence gap: expected {expected}, got {diff.first_sequence}"
            return self._interrupted(reason) if self._serving else False
        self._resyncs_in_a_row = 0
        return result is DiffResult.APPLIED or realigned

    async def _realign(self) -> bool:
        if self._resyncs_in_a_row >= MAX_RESYNCS_IN_A_ROW:
            raise BookOutOfSync(
                f"{self._exchange} {self._symbol.canonical}: snapshot still behind the "
                f"stream after {self._resyncs_in_a_row} tries"
            )
        await self._within_budget()
        snapshot = await self._feed.resync()
        if snapshot is None:
            return False  # the venue re-subscribes and sends a snapshot in-band
        self._resyncs_in_a_row += 1
        self._book.apply_snapshot(snapshot.bids, snapshot.asks, snapshot.sequence, self._clock())
        return True

    async def _within_budget(self) -> None:
        """Wait, if need be, until one more realignment fits the budget."""
        if len(self._realigned_at) == self._budget.count:
            wait = self._realigned_at[0] + self._budget.window_seconds - self._clock()
            if wait > 0:
                log.warning(
                    "%s %s: book realignments over budget (%d per %.0fs); next in %.1fs",
                    self._exchange,
                    self._symbol.canonical,
                    self._budget.count,
                    self._budget.window_seconds,
                    wait,
                )
                await self._sleep(wait)
        self._realigned_at.append(self._clock())

    def _interrupted(self, reason: str) -> FeedInterrupted:
        self._serving, self._last_view = False, None
        return FeedInterrupted(reason)
