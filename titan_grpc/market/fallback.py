"""TITAN_FALLBACK_TO_MOCK: market data from the simulator when a real venue fails.

Only market data reads fall back, and every answer says so (``fallback`` and a note).
Balances, orders and cancels always go to the real venue.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from titan_grpc.domain import (
    AuthCheck,
    Balance,
    ConnectionCheck,
    FeedInterrupted,
    Fill,
    LedgerEntry,
    Market,
    Order,
    OrderBook,
    OrderRequest,
    Quote,
    RecentTrades,
    Symbol,
    Ticker,
)
from titan_grpc.errors import AmbiguousOutcome, ExchangeUnavailable, RateLimited
from titan_grpc.exchanges.base import BookFeed, ExchangeBackend

T = TypeVar("T", Ticker, OrderBook, RecentTrades)
_FALLS_BACK = (ExchangeUnavailable, RateLimited, AmbiguousOutcome, TimeoutError)


class FallbackExchange(ExchangeBackend):
    def __init__(self, real: ExchangeBackend, simulated: ExchangeBackend) -> None:
        self.name = real.name
        self.simulated = False
        self.testnet = real.testnet
        self._real = real
        self._sim = simulated

    @property
    def credentials_configured(self) -> bool:
        return self._real.credentials_configured

    async def _data(self, read: Callable[[ExchangeBackend], Awaitable[T]]) -> T:
        try:
            return await read(self._real)
        except _FALLS_BACK as error:
            answer = await read(self._sim)
            reason = getattr(error, "message", "") or type(error).__name__
            note = f"fallback: {self.name} failed ({reason}); simulated data"
            return dataclasses.replace(answer, fallback=True, note=note)

    async def ticker(self, symbol: Symbol) -> Ticker:
        return await self._data(lambda b: b.ticker(symbol))

    async def order_book(self, symbol: Symbol, depth: int) -> OrderBook:
        return await self._data(lambda b: b.order_book(symbol, depth))

    async def recent_trades(self, symbol: Symbol, limit: int) -> RecentTrades:
        return await self._data(lambda b: b.recent_trades(symbol, limit))

    async def market_for_data(self, symbol: Symbol) -> Market:
        try:
            return await self._real.market_for_data(symbol)
        except _FALLS_BACK:
            return await self._sim.market_for_data(symbol)

    # Everything else is the real venue's, never simulated.
    async def ping(self) -> ConnectionCheck:
        return await self._real.ping()

    async def server_time(self) -> datetime:
        return await self._real.server_time()

    async def check_auth(self) -> AuthCheck:
        return await self._real.check_auth()

    async def markets(self) -> dict[Symbol, Market]:
        return await self._real.markets()

    async def balances(self) -> list[Balance]:
        return await self._real.balances()

    async def place_order(self, request: OrderRequest) -> Order:
        return await self._real.place_order(request)

    async def cancel_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        return await self._real.cancel_order(
            symbol, order_id=order_id, client_order_id=client_order_id
        )

    async def get_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        return await self._real.get_order(
            symbol, order_id=order_id, client_order_id=client_order_id
        )

    async def open_orders(self, symbol: Symbol | None) -> list[Order]:
        return await self._real.open_orders(symbol)

    async def my_trades(
        self, symbol: Symbol | None, *, order_id: str = "", limit: int = 100
    ) -> list[Fill]:
        return await self._real.my_trades(symbol, order_id=order_id, limit=limit)

    async def ledger(self, asset: str | None, limit: int) -> list[LedgerEntry]:
        return await self._real.ledger(asset, limit)

    def watch_quotes(self, symbol: Symbol) -> AsyncIterator[Quote | FeedInterrupted]:
        return self._real.watch_quotes(symbol)

    def watch_order_book(
        self, symbol: Symbol, depth: int
    ) -> AsyncIterator[OrderBook | FeedInterrupted]:
        return self._real.watch_order_book(symbol, depth)

    async def book_feed(self, symbol: Symbol) -> BookFeed | None:
        return await self._real.book_feed(symbol)

    async def close(self) -> None:
        await self._real.close()
