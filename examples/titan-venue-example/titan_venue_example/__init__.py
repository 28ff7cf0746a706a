"""A paper venue for TITAN: one market quoted around a fixed price.

The factory ``create`` gets a VenueContext: the venue id (``example``) and only the
environment variables with its prefix (``EXAMPLE_``). It returns an ExchangeBackend.
Its data is marked simulated: it is not a real market.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from titan_grpc.domain import (
    AuthCheck,
    Balance,
    FeedInterrupted,
    Fill,
    LedgerEntry,
    Liquidity,
    Market,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    PriceLevel,
    Quote,
    RecentTrades,
    Side,
    Symbol,
    Ticker,
)
from titan_grpc.errors import (
    ConfigError,
    OrderNotCancelable,
    OrderNotFound,
    UnknownSymbol,
    VenueLacksFeature,
)
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.filters import check_order_filters
from titan_grpc.exchanges.plugins import VenueContext
from titan_grpc.exchanges.streaming import quote_from_ticker

BTC_USDT = Symbol("BTC", "USDT")


def _setting(context: VenueContext, name: str, default: str) -> Decimal:
    variable = context.prefix + name
    text = context.env.get(variable, default)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError([f"{variable}: expected a decimal number, got {text!r}"]) from None
    if not value.is_finite() or value <= 0:
        raise ConfigError([f"{variable}: must be above 0, got {text!r}"])
    return value


def create(context: VenueContext) -> ExchangeBackend:
    return ExampleExchange(
        context.name,
        price=_setting(context, "PRICE", "50000"),
        spread=_setting(context, "SPREAD", "1"),
        size=_setting(context, "SIZE", "1"),
    )


class ExampleExchange(ExchangeBackend):
    simulated = True  # paper quotes and fills: every answer says so

    def __init__(self, name: str, *, price: Decimal, spread: Decimal, size: Decimal) -> None:
        self.name = name
        self._bid, self._ask, self._size = price - spread / 2, price + spread / 2, size
        self._market = Market(
            exchange=name,
            symbol=BTC_USDT,
            venue_symbol="BTC_USDT",
            tick_size=Decimal("0.01"),
            step_size=Decimal("0.0001"),
            min_quantity=Decimal("0.0001"),
            max_quantity=size,
            min_notional=Decimal("1"),
            maker_fee_rate=Decimal(0),
            taker_fee_rate=Decimal(0),
        )
        self._orders: dict[str, Order] = {}
        self._ids = itertools.count(1)

    def _now(self) -> datetime:
        return datetime.now(UTC)

    async def server_time(self) -> datetime:
        return self._now()

    async def check_auth(self) -> AuthCheck:
        return AuthCheck(permissions=("spot", "trade", "simulated"))

    async def markets(self) -> dict[Symbol, Market]:
        return {BTC_USDT: self._market}

    async def ticker(self, symbol: Symbol) -> Ticker:
        market = await self.market(symbol)
        return Ticker(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=market.venue_symbol,
            bid=self._bid,
            bid_size=self._size,
            ask=self._ask,
            ask_size=self._size,
            last=None,
            open_24h=None,
            high_24h=None,
            low_24h=None,
            volume_24h=Decimal(0),
            quote_volume_24h=Decimal(0),
            change_percent_24h=None,
            simulated=True,
            venue_time=self._now(),
            received_time=self._now(),
        )

    async def order_book(self, symbol: Symbol, depth: int) -> OrderBook:
        market = await self.market(symbol)
        return OrderBook(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=market.venue_symbol,
            bids=(PriceLevel(self._bid, self._size),)[:depth],
            asks=(PriceLevel(self._ask, self._size),)[:depth],
            sequence=1,
            simulated=True,
            venue_time=self._now(),
            received_time=self._now(),
        )

    async def recent_trades(self, symbol: Symbol, limit: int) -> RecentTrades:
        market = await self.market(symbol)
        return RecentTrades(self.name, symbol, market.venue_symbol, (), True, self._now())

    async def balances(self) -> list[Balance]:
        return [Balance("USDT", Decimal(1_000_000), Decimal(0))]

    async def place_order(self, request: OrderRequest) -> Order:
        if request.type.is_stop or request.quote_quantity is not None:
            raise VenueLacksFeature(
                f"{self.name}: only limit and market orders sized in the base asset",
                exchange=self.name,
            )
        market = await self.market(request.symbol)
        check_order_filters(market, request, self._ask if request.side is Side.BUY else self._bid)
        touch = self._ask if request.side is Side.BUY else self._bid
        price = request.price
        crosses = price is None or (price >= touch if request.side is Side.BUY else price <= touch)
        order_id = str(next(self._ids))
        now = self._now()
        fill = Fill(
            trade_id=order_id,
            order_id=order_id,
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            price=touch,
            quantity=request.quantity,
            fee=Decimal(0),
            fee_asset="USDT",
            liquidity=Liquidity.TAKER,
            time=now,
        )
        order = Order(
            exchange=self.name,
            symbol=request.symbol,
            venue_symbol=market.venue_symbol,
            order_id=order_id,
            client_order_id=request.client_order_id,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            status=OrderStatus.FILLED if crosses else OrderStatus.NEW,
            price=price if request.type is OrderType.LIMIT else None,
            quantity=request.quantity,
            filled_quantity=request.quantity if crosses else Decimal(0),
            filled_quote_quantity=touch * request.quantity if crosses else Decimal(0),
            fee=Decimal(0),
            fee_asset="USDT",
            created_time=now,
            updated_time=now,
            simulated=True,
            fills=(fill,) if crosses else (),
        )
        self._orders[order_id] = order
        return order

    def _find(self, order_id: str, client_order_id: str) -> Order:
        for order in self._orders.values():
            if order.order_id == order_id or (
                client_order_id and order.client_order_id == client_order_id
            ):
                return order
        raise OrderNotFound(f"{self.name}: no such order", exchange=self.name)

    async def cancel_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        order = self._find(order_id, client_order_id)
        if order.status is OrderStatus.CANCELED:
            return order
        if not order.status.is_open:
            raise OrderNotCancelable(
                f"{self.name}: order is {order.status.value}", exchange=self.name
            )
        cancelled = replace(order, status=OrderStatus.CANCELED, updated_time=self._now())
        self._orders[order.order_id] = cancelled
        return cancelled

    async def get_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        return self._find(order_id, client_order_id)

    async def open_orders(self, symbol: Symbol | None) -> list[Order]:
        return [o for o in self._orders.values() if o.status.is_open]

    async def my_trades(
        self, symbol: Symbol | None, *, order_id: str = "", limit: int = 100
    ) -> list[Fill]:
        fills = [f for o in self._orders.values() for f in o.fills]
        return [f for f in fills if not order_id or f.order_id == order_id][-limit:][::-1]

    async def ledger(self, asset: str | None, limit: int) -> list[LedgerEntry]:
        return []

    async def watch_quotes(self, symbol: Symbol) -> AsyncIterator[Quote | FeedInterrupted]:
        if symbol != BTC_USDT:
            raise UnknownSymbol(f"{self.name} does not list {symbol.canonical}", exchange=self.name)
        yield quote_from_ticker(await self.ticker(symbol))
        await asyncio.Event().wait()  # fixed quotes never change
