"""Pieces the venue stream modules share: the quote feed and the state it keeps, the
sequenced book feed, and the malformed-frame guard. Venue-specific parsing (frame ->
QuoteUpdate / BookDiff) stays in each venue's stream.py."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from titan_grpc.domain import BookDiff, BookSnapshot, FeedInterrupted, OrderBook, Quote, Ticker
from titan_grpc.errors import MalformedResponse
from titan_grpc.net.ws import WsConnected, WsEvent, WsGap, WsUnreadable

log = logging.getLogger("titan_grpc.upstream")

# What a venue frame can throw when a field is missing or not a number.
FRAME_ERRORS = (
    AttributeError,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    InvalidOperation,
    MalformedResponse,
)


@dataclass
class FrameStats:
    malformed: int = 0

    def skip(self, exchange: str, what: str, error: Exception) -> None:
        self.malformed += 1
        log.warning("%s: skipped a malformed %s frame (%s)", exchange, what, type(error).__name__)


def quote_from_ticker(ticker: Ticker) -> Quote:
    return Quote(
        exchange=ticker.exchange,
        symbol=ticker.symbol,
        venue_symbol=ticker.venue_symbol,
        bid=ticker.bid,
        bid_size=ticker.bid_size,
        ask=ticker.ask,
        ask_size=ticker.ask_size,
        last=ticker.last,
        simulated=ticker.simulated,
        venue_time=ticker.venue_time,
        received_time=ticker.received_time,
        note=ticker.note,
        fallback=ticker.fallback,
    )


@dataclass(frozen=True, slots=True)
class QuoteUpdate:
    """What one venue frame says about the quote; fields left None are not in the frame.
    Frames with a ``sequence`` are dropped unless newer than the last one applied."""

    sequence: int | None = None
    bid: Decimal | None = None
    bid_size: Decimal | None = None
    ask: Decimal | None = None
    ask_size: Decimal | None = None
    last: Decimal | None = None
    venue_time: datetime | None = None


_QUOTE_FIELDS = ("bid", "bid_size", "ask", "ask_size", "last")


class QuoteState:
    """Top of book + last price merged from the venue's partial updates; ``apply``
    answers the new Quote, or None when nothing a subscriber sees has changed."""

    def __init__(self, seed: Quote, clock: Callable[[], float] = time.time) -> None:
        self._quote = seed
        self._clock = clock

    @classmethod
    def from_ticker(cls, ticker: Ticker, clock: Callable[[], float] = time.time) -> QuoteState:
        return cls(quote_from_ticker(ticker), clock)

    @property
    def quote(self) -> Quote:
        return self._quote

    def apply(self, update: QuoteUpdate) -> Quote | None:
        given = {
            name: value for name in _QUOTE_FIELDS if (value := getattr(update, name)) is not None
        }
        if all(getattr(self._quote, name) == value for name, value in given.items()):
            return None
        self._quote = replace(
            self._quote,
            **given,
            venue_time=update.venue_time or self._quote.venue_time,
            received_time=datetime.fromtimestamp(self._clock(), tz=UTC),
        )
        return self._quote


async def quote_feed(
    exchange: str,
    events: AsyncIterator[WsEvent],
    fetch_ticker: Callable[[], Awaitable[Ticker]],
    read: Callable[[Any], QuoteUpdate | None],
    stats: FrameStats,
) -> AsyncIterator[Quote | FeedInterrupted]:
    """Quotes from a venue's WebSocket frames: seeded from the REST ticker on every
    (re)connect so a quiet market answers at once, then one per visible change.
    ``read`` turns a frame into a QuoteUpdate (None: not a quote frame; it may raise
    FRAME_ERRORS for a malformed one, which is counted and skipped)."""
    state: QuoteState | None = None
    last_sequence = 0
    async for event in events:
        if isinstance(event, WsUnreadable):
            continue  # the next frame carries the whole top of book again
        if isinstance(event, WsGap):  # once per outage, the first failed connect too
            state = None
            yield FeedInterrupted(event.reason)
            continue
        if isinstance(event, WsConnected):
            state, last_sequence = QuoteState.from_ticker(await fetch_ticker()), 0
            yield state.quote
            continue
        if state is None:
            continue
        try:
            update = read(event.data)
        except FRAME_ERRORS as error:
            stats.skip(exchange, "quote", error)
            continue
        if update is None:
            continue
        if update.sequence is not None:
            if update.sequence <= last_sequence:
                continue  # older than what we already show
            last_sequence = update.sequence
        quote = state.apply(update)
        if quote is not None:
            yield quote


class SequencedBookFeed:
    """The BookFeed of a venue whose L2 diffs carry sequence numbers that its REST
    snapshots share (Binance, KuCoin): diffs in, REST snapshots to realign.

    On every (re)connect the snapshot is fetched after subscribing, so every diff newer
    than it is already queued on the connection and a quiet market is served at once.
    """

    def __init__(
        self,
        exchange: str,
        venue_symbol: str,
        events: Callable[[], AsyncIterator[WsEvent]],
        read_diff: Callable[[Any], BookDiff | None],
        fetch_snapshot: Callable[[], Awaitable[OrderBook]],
        stats: FrameStats,
        note: str = "",
    ) -> None:
        self.venue_symbol, self.note = venue_symbol, note
        self._exchange = exchange
        self._events, self._read_diff = events, read_diff
        self._fetch_snapshot = fetch_snapshot
        self._stats = stats

    async def updates(self) -> AsyncIterator[BookDiff | BookSnapshot | FeedInterrupted]:
        async for event in self._events():
            if isinstance(event, WsUnreadable):
                continue  # the next diff's sequence shows whether it mattered
            if isinstance(event, WsGap):
                yield FeedInterrupted(event.reason)
                continue
            if isinstance(event, WsConnected):
                yield await self.resync()
                continue
            try:
                diff = self._read_diff(event.data)
            except FRAME_ERRORS as error:
                self._stats.skip(self._exchange, "book diff", error)
                continue
            if diff is not None:
                yield diff

    async def resync(self) -> BookSnapshot:
        book = await self._fetch_snapshot()
        return BookSnapshot(book.bids, book.asks, book.sequence, book.venue_time)
