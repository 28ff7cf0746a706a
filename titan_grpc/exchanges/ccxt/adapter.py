"""Any exchange ccxt supports behind the ExchangeBackend interface (venue ids ccxt:<id>).

ccxt does the venue's HTTP, signing and parsing; this adapter keeps TITAN's rules:

- money stays decimal: ccxt runs in string number mode with JSON numbers read as strings,
  book levels are read as strings (ccxt would read them with ``safe_float``), and
  ``parse.decimal`` guards the floats ccxt still makes (see parse.py);
- TITAN's client_order_id is the id the venue sees (ccxt's unified ``clientOrderId``);
  an ambiguous placement is settled by the venue's lookup by client id where ccxt offers
  one (``CLIENT_ID_LOOKUP``), else through open and recent closed orders; when neither
  settles it the order stays AMBIGUOUS and is never sent again;
- a capability the venue lacks answers VenueLacksFeature naming venue and feature;
- every call spends TITAN's venue budget in the caller's lane first, then ccxt's own
  limiter (``enableRateLimit``) paces it to the venue's published rate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from titan_grpc import errors
from titan_grpc.domain import (
    AuthCheck,
    Balance,
    FeedInterrupted,
    FeeSource,
    Fill,
    LedgerEntry,
    Market,
    Order,
    OrderBook,
    OrderRequest,
    OrderStatus,
    OrderType,
    Quote,
    RecentTrades,
    Side,
    Symbol,
    Ticker,
    TimeInForce,
    format_decimal,
)
from titan_grpc.errors import VenueLacksFeature
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.ccxt import parse
from titan_grpc.exchanges.ccxt.failures import AMBIGUOUS, DEFINITE, translate
from titan_grpc.exchanges.ccxt.instance import build_exchange
from titan_grpc.exchanges.ccxt.settings import CcxtSettings
from titan_grpc.exchanges.common import (
    RECONCILE_DELAYS_SECONDS,
    MarketCache,
    reconcile_by_client_id,
)
from titan_grpc.exchanges.filters import check_order_filters
from titan_grpc.exchanges.streaming import quote_from_ticker
from titan_grpc.net.ratelimit import UNSHARED, BudgetFactory

log = logging.getLogger(__name__)

# ccxt exchanges whose fetchOrder/cancelOrder find an order by the client id passed in
# this parameter (checked in ccxt's source). Elsewhere a client-id lookup searches open
# and recent closed orders and never concludes "not found".
CLIENT_ID_LOOKUP = {
    "binance": "clientOrderId",
    "binanceus": "clientOrderId",
    "okx": "clientOrderId",
    "kucoin": "clientOrderId",
    "bitget": "clientOrderId",
    "kraken": "clientOrderId",
    "coinbaseexchange": "clientOrderId",
    "mexc": "clientOrderId",
    "bybit": "orderLinkId",
}
RECENT_CLOSED_ORDERS = 100


class CcxtExchange(ExchangeBackend):
    simulated = False

    def __init__(
        self,
        settings: CcxtSettings,
        *,
        exchange: Any = None,
        budgets: BudgetFactory = UNSHARED,
        clock: Callable[[], float] = time.time,
        market_ttl_seconds: float = 3600.0,
        reconcile_delays: Sequence[float] = RECONCILE_DELAYS_SECONDS,
        rate_limit_max_wait_seconds: float = 10.0,
    ) -> None:
        self.name = settings.venue
        self.testnet = settings.sandbox
        self._settings = settings
        self._exchange = exchange if exchange is not None else build_exchange(settings)
        self._secrets = [
            s.reveal() for s in (settings.api_key, settings.secret, settings.password) if s
        ]
        rate = 1000 / max(float(self._exchange.rateLimit or 1), 1.0)
        self._limiter = budgets.bucket(
            self.name,
            "requests",
            rate,
            max(1, int(rate)),
            max_wait_seconds=rate_limit_max_wait_seconds,
        )
        self._clock = clock
        self._market_cache = MarketCache(self._load_markets, market_ttl_seconds, clock)
        # The account's rates per market once fetchTradingFees answered (refresh_fees).
        self._account_fees: dict[Symbol, tuple[Decimal, Decimal]] = {}
        self._fee_view: tuple[object, dict[Symbol, Market]] | None = None
        self._reconcile_delays = tuple(reconcile_delays)
        self._client_id_param = CLIENT_ID_LOOKUP.get(settings.exchange_id)
        self._pro: Any = None

    @property
    def credentials_configured(self) -> bool:
        return bool(self._settings.api_key) and bool(self._settings.secret)

    @property
    def exchange(self) -> Any:
        return self._exchange

    def rate_budget_used(self) -> float:
        return self._limiter.usage_ratio

    async def close(self) -> None:
        await self._exchange.close()
        if self._pro is not None:
            await self._pro.close()

    # ---- plumbing ------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    def _has(self, feature: str) -> bool:
        return bool(self._exchange.has.get(feature))

    def _require(self, feature: str) -> None:
        if not self._has(feature):
            raise VenueLacksFeature(
                f"{self.name}: the venue has no {feature} through ccxt",
                exchange=self.name,
            )

    def _require_keys(self) -> None:
        if not self.credentials_configured:
            prefix = self._settings.prefix
            raise errors.NotConfigured(
                f"{self.name}: account and trading calls need {prefix}API_KEY and {prefix}SECRET",
                variable=f"{prefix}API_KEY",
            )

    def _translate(self, error: Exception, feature: str) -> errors.TitanError:
        return translate(error, self.name, feature, self._secrets)

    async def _call(self, feature: str, method: str, *args: Any, **kwargs: Any) -> Any:
        self._require(feature)
        await self._limiter.acquire(1)
        try:
            return await getattr(self._exchange, method)(*args, **kwargs)
        except Exception as error:
            raise self._translate(error, feature) from None

    # ---- public --------------------------------------------------------------------

    async def server_time(self) -> datetime:
        if not self._has("fetchTime"):
            return self._now()
        venue_ms = await self._call("fetchTime", "fetch_time")
        return datetime.fromtimestamp(int(venue_ms) / 1000, tz=UTC)

    async def check_auth(self) -> AuthCheck:
        self._require_keys()
        await self._call("fetchBalance", "fetch_balance")
        return AuthCheck(permissions=("read",))

    async def markets(self) -> dict[Symbol, Market]:
        loaded = await self._market_cache.get()
        view = self._fee_view
        if view is not None and view[0] is loaded:
            return view[1]
        applied = {
            symbol: dataclasses.replace(
                market,
                maker_fee_rate=self._account_fees[symbol][0],
                taker_fee_rate=self._account_fees[symbol][1],
                fee_source=FeeSource.ACCOUNT,
            )
            if symbol in self._account_fees
            else market
            for symbol, market in loaded.items()
        }
        self._fee_view = (loaded, applied)
        return applied

    async def refresh_fees(self) -> None:
        """The account's maker/taker rates through ccxt's fetchTradingFees, where the
        venue has it and keys are configured; ccxt's per-market defaults otherwise."""
        if not self.credentials_configured or not self._has("fetchTradingFees"):
            return
        loaded = await self._market_cache.get()
        rows = await self._call("fetchTradingFees", "fetch_trading_fees")
        by_unified = {self._unified(market): symbol for symbol, market in loaded.items()}
        fees = {}
        for unified, row in rows.items():
            symbol = by_unified.get(unified)
            if symbol is not None and row.get("maker") is not None and row.get("taker") is not None:
                fees[symbol] = (
                    parse.decimal(row["maker"], "maker fee"),
                    parse.decimal(row["taker"], "taker fee"),
                )
        self._account_fees = fees
        self._fee_view = None

    async def _load_markets(self) -> dict[Symbol, Market]:
        await self._limiter.acquire(1)
        try:
            loaded = await self._exchange.load_markets(True)
        except Exception as error:
            raise self._translate(error, "loadMarkets") from None
        return parse.parse_markets(self.name, loaded, int(self._exchange.precisionMode))

    def _unified(self, market: Market) -> str:
        """ccxt's symbol for a market (BTC/USDT), by the venue's own id."""
        found = self._exchange.markets_by_id.get(market.venue_symbol) or []
        for candidate in found if isinstance(found, list) else [found]:
            if candidate.get("spot", True):
                return str(candidate["symbol"])
        return f"{market.symbol.base}/{market.symbol.quote}"

    async def ticker(self, symbol: Symbol) -> Ticker:
        market = await self.market(symbol)
        data = await self._call("fetchTicker", "fetch_ticker", self._unified(market))
        return parse.parse_ticker(data, market, self._now())

    async def order_book(self, symbol: Symbol, depth: int) -> OrderBook:
        market = await self.market(symbol)
        # No limit: venues accept different sets of depths; the book is cut here.
        data = await self._call("fetchOrderBook", "fetch_order_book", self._unified(market))
        return parse.parse_order_book(data, market, depth, self._now())

    async def recent_trades(self, symbol: Symbol, limit: int) -> RecentTrades:
        market = await self.market(symbol)
        rows = await self._call("fetchTrades", "fetch_trades", self._unified(market), None, limit)
        return RecentTrades(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=market.venue_symbol,
            trades=parse.parse_public_trades(rows)[:limit],
            simulated=False,
            received_time=self._now(),
        )

    # ---- account -------------------------------------------------------------------

    async def balances(self) -> list[Balance]:
        self._require_keys()
        data = await self._call("fetchBalance", "fetch_balance")
        return parse.parse_balances(data)

    async def place_order(self, request: OrderRequest) -> Order:
        self._require_keys()
        self._require("createOrder")
        if request.type.is_stop:
            # ccxt's triggerPrice means different order kinds per venue: not guessed here.
            raise errors.OrderTypeUnsupported(
                f"{self.name}: stop orders are not supported through ccxt", exchange=self.name
            )
        if request.quote_quantity is not None:
            raise VenueLacksFeature(
                f"{self.name}: orders sized in the quote asset (quote_quantity) are not "
                "supported through ccxt",
                exchange=self.name,
            )
        market = await self.market(request.symbol)
        reference = None
        if request.type is OrderType.MARKET and market.min_notional > 0:
            ticker = await self.ticker(request.symbol)
            reference = ticker.ask if request.side is Side.BUY else ticker.bid
        check_order_filters(market, request, reference)
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        if request.type is OrderType.LIMIT:
            if request.post_only:
                params["postOnly"] = True
            elif request.time_in_force is not TimeInForce.GTC:
                params["timeInForce"] = request.time_in_force.name
        await self._limiter.acquire(1)
        try:
            data = await self._exchange.create_order(
                self._unified(market),
                request.type.value,
                request.side.value,
                format_decimal(request.quantity),  # strings: ccxt formats them exactly
                format_decimal(request.price) if request.price is not None else None,
                params,
            )
        except Exception as raw:
            error = self._translate(raw, "createOrder")
            if isinstance(error, DEFINITE) or not isinstance(error, AMBIGUOUS):
                raise error from None
            # Possibly executed: find out by client order id, never send it again.
            return await self._reconcile(market, request.client_order_id, error)
        order = parse.parse_order(data, market, self._now())
        if not order.client_order_id:
            order = _with_client_id(order, request.client_order_id)
        return order

    async def _reconcile(self, market: Market, client_order_id: str, cause: Exception) -> Order:
        async def lookup() -> Order:
            return await self.get_order(market.symbol, client_order_id=client_order_id)

        return await reconcile_by_client_id(
            self.name, client_order_id, lookup, self._reconcile_delays, cause
        )

    async def _market_for_order(self, symbol: Symbol | None) -> Market:
        if symbol is None:
            raise errors.InvalidArgument("symbol", f"{self.name} needs the symbol to find an order")
        return await self.market(symbol)

    def _id_params(self, order_id: str, client_order_id: str) -> tuple[str, dict[str, Any]]:
        if order_id:
            return order_id, {}
        assert self._client_id_param is not None
        return "", {self._client_id_param: client_order_id}

    async def cancel_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        self._require_keys()
        market = await self._market_for_order(symbol)
        if not order_id and self._client_id_param is None:
            order_id = (await self.get_order(symbol, client_order_id=client_order_id)).order_id
        venue_id, params = self._id_params(order_id, client_order_id)
        try:
            data = await self._call(
                "cancelOrder", "cancel_order", venue_id, self._unified(market), params
            )
        except errors.OrderNotFound:
            # Also the answer for orders already done: say which.
            existing = await self.get_order(
                market.symbol, order_id=order_id, client_order_id=client_order_id
            )
            if existing.status is OrderStatus.CANCELED:
                return existing
            raise errors.OrderNotCancelable(
                f"{self.name}: order {existing.order_id} is already {existing.status.value}",
                exchange=self.name,
            ) from None
        order = parse.parse_order(data, market, self._now())
        if order.status is not OrderStatus.CANCELED or not order.order_id:
            # Some venues answer a cancel with the id only: ask for the order.
            return await self.get_order(
                market.symbol,
                order_id=order.order_id or order_id,
                client_order_id=client_order_id,
            )
        return order

    async def get_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        self._require_keys()
        market = await self._market_for_order(symbol)
        if order_id or self._client_id_param is not None:
            venue_id, params = self._id_params(order_id, client_order_id)
            data = await self._call(
                "fetchOrder", "fetch_order", venue_id, self._unified(market), params
            )
            return parse.parse_order(data, market, self._now())
        return await self._search_by_client_id(market, client_order_id)

    async def _search_by_client_id(self, market: Market, client_order_id: str) -> Order:
        """Open orders, then recent closed ones. Not finding it proves nothing here, so it
        never answers OrderNotFound (which would let an ambiguous order be sent again)."""
        unified = self._unified(market)
        searched = []
        for feature, method, args in (
            ("fetchOpenOrders", "fetch_open_orders", (unified,)),
            ("fetchClosedOrders", "fetch_closed_orders", (unified, None, RECENT_CLOSED_ORDERS)),
        ):
            if not self._has(feature):
                continue
            searched.append(feature)
            for row in await self._call(feature, method, *args):
                if row.get("clientOrderId") == client_order_id:
                    return parse.parse_order(row, market, self._now())
        where = " and ".join(searched) or "no order listing"
        raise VenueLacksFeature(
            f"{self.name}: the venue has no lookup by client order id through ccxt, and "
            f"{client_order_id} is not in {where}; its outcome cannot be settled here",
            exchange=self.name,
        )

    async def open_orders(self, symbol: Symbol | None) -> list[Order]:
        self._require_keys()
        markets = await self.markets()
        unified = self._unified(await self.market(symbol)) if symbol is not None else None
        rows = await self._call("fetchOpenOrders", "fetch_open_orders", unified)
        by_unified = {self._unified(m): m for m in markets.values()}
        now = self._now()
        return [
            parse.parse_order(row, by_unified[row["symbol"]], now)
            for row in rows
            if row.get("symbol") in by_unified
        ]

    async def my_trades(
        self, symbol: Symbol | None, *, order_id: str = "", limit: int = 100
    ) -> list[Fill]:
        self._require_keys()
        if symbol is None:
            raise errors.InvalidArgument("symbol", f"{self.name} lists trades per symbol")
        market = await self.market(symbol)
        unified = self._unified(market)
        if order_id and self._has("fetchOrderTrades"):
            rows = await self._call(
                "fetchOrderTrades", "fetch_order_trades", order_id, unified, None, limit
            )
        else:
            rows = await self._call("fetchMyTrades", "fetch_my_trades", unified, None, limit)
            if order_id:
                rows = [row for row in rows if str(row.get("order")) == order_id]
        fills = [parse.parse_fill(row, market) for row in rows]
        fills.sort(key=lambda fill: fill.time, reverse=True)  # newest first
        return fills[:limit]

    async def ledger(self, asset: str | None, limit: int) -> list[LedgerEntry]:
        self._require_keys()
        rows = await self._call("fetchLedger", "fetch_ledger", asset, None, limit)
        return parse.parse_ledger(rows)[:limit]

    # ---- streams -------------------------------------------------------------------

    def _pro_exchange(self) -> Any:
        """ccxt.pro's instance for watch_ticker, or None when the venue has none."""
        if self._pro is None and self._settings.watch:
            try:
                import ccxt.pro as ccxt_pro
            except ImportError:
                return None
            if self._settings.exchange_id in getattr(ccxt_pro, "exchanges", ()):
                pro = build_exchange(self._settings, ccxt_pro)
                self._pro = pro if pro.has.get("watchTicker") else None
        return self._pro

    async def watch_quotes(self, symbol: Symbol) -> AsyncIterator[Quote | FeedInterrupted]:
        market = await self.market(symbol)
        pro = self._pro_exchange()
        if pro is None:
            async for quote in self._poll_quotes(symbol):
                yield quote
            return
        unified = self._unified(market)
        last: Quote | None = None
        while True:
            try:
                data = await pro.watch_ticker(unified)
            except Exception as raw:
                error = self._translate(raw, "watchTicker")
                yield FeedInterrupted(f"{self.name} ticker feed: {error.message}")
                await asyncio.sleep(self._settings.poll_seconds)
                continue
            quote = quote_from_ticker(parse.parse_ticker(data, market, self._now()))
            if last is None or _changed(last, quote):
                last = quote
                yield quote

    async def _poll_quotes(self, symbol: Symbol) -> AsyncIterator[Quote | FeedInterrupted]:
        """Venues without watchTicker: the ticker asked every poll_seconds in the read lane."""
        last: Quote | None = None
        failing = False
        while True:
            try:
                quote = quote_from_ticker(await self.ticker(symbol))
            except errors.ExchangeError as error:
                if not failing:
                    failing = True
                    yield FeedInterrupted(f"{self.name} ticker poll: {error.message}")
            else:
                if failing or last is None or _changed(last, quote):
                    failing = False
                    last = quote
                    yield quote
            await asyncio.sleep(self._settings.poll_seconds)

    async def watch_order_book(
        self, symbol: Symbol, depth: int
    ) -> AsyncIterator[OrderBook | FeedInterrupted]:
        """Books are polled, never taken from ccxt.pro: its local book keeps floats."""
        last: OrderBook | None = None
        failing = False
        while True:
            try:
                book = await self.order_book(symbol, depth)
            except errors.ExchangeError as error:
                if not failing:
                    failing = True
                    yield FeedInterrupted(f"{self.name} book poll: {error.message}")
            else:
                if failing or last is None or (book.bids, book.asks) != (last.bids, last.asks):
                    failing = False
                    last = book
                    yield book
            await asyncio.sleep(self._settings.poll_seconds)


def _changed(old: Quote, new: Quote) -> bool:
    return (old.bid, old.bid_size, old.ask, old.ask_size, old.last) != (
        new.bid,
        new.bid_size,
        new.ask,
        new.ask_size,
        new.last,
    )


def _with_client_id(order: Order, client_order_id: str) -> Order:
    return dataclasses.replace(order, client_order_id=client_order_id)
