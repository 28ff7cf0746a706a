"""Quote and book feeds by REST polling, for venues whose WebSocket feed is not wired yet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from titan_grpc.domain import OrderBook, Quote, Ticker


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


async def poll_quotes(
    fetch: Callable[[], Awaitable[Ticker]], interval_seconds: float
) -> AsyncIterator[Quote]:
    """Yield a quote now and then whenever top of book or last price changes."""
    previous: tuple[object, ...] = ()
    while True:
        ticker = await fetch()
        current = (ticker.bid, ticker.bid_size, ticker.ask, ticker.ask_size, ticker.last)
        if current != previous:
            previous = current
            yield quote_from_ticker(ticker)
        await asyncio.sleep(interval_seconds)


async def poll_order_book(
    fetch: Callable[[], Awaitable[OrderBook]], interval_seconds: float
) -> AsyncIterator[OrderBook]:
    """Yield the book now and then whenever its sequence (or content) changes."""
    previous: tuple[object, ...] = ()
    while True:
        book = await fetch()
        current = (book.sequence, book.bids, book.asks)
        if current != previous:
            previous = current
            yield book
        await asyncio.sleep(interval_seconds)
