"""The simulated venue behind the ExchangeBackend interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal

from titan_grpc.domain import (
    MONEY_CONTEXT,
    AuthCheck,
    Balance,
    ConnectionCheck,
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
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.simulated.world import SimulatedWorld
from titan_grpc.exchanges.streaming import quote_from_ticker
from titan_grpc.paging import Page, PageRequest


class SimulatedExchange(ExchangeBackend):
    simulated = True

    def __init__(self, name: str, world: SimulatedWorld) -> None:
        self.name = name
        self._world = world
        self._engine = world.engine(name)

    async def ping(self) -> ConnectionCheck:
        return ConnectionCheck(latency_seconds=0.0, venue_time=self._world.clock())

    async def server_time(self) -> datetime:
        return self._world.clock()

    async def check_auth(self) -> AuthCheck:
        return AuthCheck(permissions=("spot", "trade", "simulated"))

    async def markets(self) -> dict[Symbol, Market]:
        return dict(self._engine.markets)

    async def ticker(self, symbol: Symbol) -> Ticker:
        return self._ticker(symbol)

    def _ticker(self, symbol: Symbol) -> Ticker:
        market = self._engine.market(symbol)
        bids, asks, _ = self._engine.book(symbol, 1)
        stats = self._engine.stats(symbol)
        change = None
        if stats.open and stats.last is not None:
            change = MONEY_CONTEXT.divide((stats.last - stats.open) * 100, stats.open).quantize(
                Decimal("0.01")
            )
        now = self._world.clock()
        return Ticker(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=market.venue_symbol,
            bid=bids[0].price if bids else None,
            bid_size=bids[0].quantity if bids else None,
            ask=asks[0].price if asks else None,
            ask_size=asks[0].quantity if asks else None,
            last=stats.last,
            open_24h=stats.open,
            high_24h=stats.high,
            low_24h=stats.low,
            volume_24h=stats.volume,
            quote_volume_24h=stats.quote_volume,
            change_percent_24h=change,
            simulated=True,
            venue_time=now,
            received_time=now,
        )

    async def order_book(self, symbol: Symbol, depth: int) -> OrderBook:
        return self._order_book(symbol, depth)

    def _order_book(self, symbol: Symbol, depth: int) -> OrderBook:
        market = self._engine.market(symbol)
        bids, asks, sequence = self._engine.book(symbol, depth)
        now = self._world.clock()
        return OrderBook(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=market.venue_symbol,
            bids=tuple(bids),
            asks=tuple(asks),
            sequence=sequence,
            simulated=True,
            venue_time=now,
            received_time=now,
        )

    async def recent_trades(self, symbol: Symbol, limit: int) -> RecentTrades:
        market = self._engine.market(symbol)
        return RecentTrades(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=market.venue_symbol,
            trades=tuple(self._engine.public_trades(symbol, limit)),
            simulated=True,
            received_time=self._world.clock(),
        )

    async def balances(self) -> list[Balance]:
        return self._engine.balances()

    async def place_order(self, request: OrderRequest) -> Order:
        return self._engine.place(request)

    async def cancel_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        return self._engine.cancel(order_id=order_id, client_order_id=client_order_id)

    async def get_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        return self._engine.order(order_id=order_id, client_order_id=client_order_id)

    async def open_orders(self, symbol: Symbol | None) -> list[Order]:
        return self._engine.open_orders(symbol)

    async def my_trades(
        self, symbol: Symbol | None, *, order_id: str = "", limit: int = 100
    ) -> list[Fill]:
        return self._engine.fills(symbol, order_id, limit)

    async def ledger(self, asset: str | None, limit: int) -> list[LedgerEntry]:
        return self._engine.ledger(asset, limit)

    async def trades_page(
        self, symbol: Symbol | None, order_id: str, page: PageRequest
    ) -> Page[Fill]:
        return self._engine.fills_page(symbol, order_id, page)

    async def ledger_page(self, asset: str | None, page: PageRequest) -> Page[LedgerEntry]:
        return self._engine.ledger_page(asset, page)

    async def watch_quotes(self, symbol: Symbol) -> AsyncIterator[Quote]:
        self._engine.market(symbol)
        version = -1
        previous: tuple[object, ...] = ()
        self._world.active_watchers += 1
        try:
            while True:
                version = await self._world.wait_for_change(self.name, version)
                ticker = self._ticker(symbol)
                current = (ticker.bid, ticker.bid_size, ticker.ask, ticker.ask_size, ticker.last)
                if current == previous:
                    continue
                previous = current
                yield quote_from_ticker(ticker)
        finally:
            self._world.active_watchers -= 1

    async def watch_order_book(self, symbol: Symbol, depth: int) -> AsyncIterator[OrderBook]:
        self._engine.market(symbol)
        version = -1
        self._world.active_watchers += 1
        try:
            while True:
                version = await self._world.wait_for_change(self.name, version)
                yield self._order_book(symbol, depth)
        finally:
            self._world.active_watchers -= 1
