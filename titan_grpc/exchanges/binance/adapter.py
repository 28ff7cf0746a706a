"""Binance spot behind the ExchangeBackend interface: RestClient + auth + parse."""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from titan_grpc.config import VenueSettings
from titan_grpc.domain import (
    AuthCheck,
    Balance,
    FeedInterrupted,
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
    format_decimal,
)
from titan_grpc.errors import (
    AmbiguousOutcome,
    AuthenticationError,
    ConfigError,
    FeatureUnavailable,
    InvalidArgument,
    MalformedResponse,
    NotConfigured,
    OrderNotCancelable,
    OrderNotFound,
)
from titan_grpc.exchanges.base import BookFeed, ExchangeBackend
from titan_grpc.exchanges.binance import auth, endpoints, parse, stream
from titan_grpc.exchanges.binance.endpoints import Endpoint
from titan_grpc.exchanges.common import (
    RECONCILE_DELAYS_SECONDS,
    MarketCache,
    credential_problems,
    reconcile_by_client_id,
)
from titan_grpc.exchanges.fees import AccountFees
from titan_grpc.exchanges.filters import check_order_filters
from titan_grpc.exchanges.streaming import FrameStats
from titan_grpc.net import ClockSync, RestClient, RestRequest, RetryPolicy
from titan_grpc.net.ratelimit import UNSHARED, BudgetFactory
from titan_grpc.net.rest import RequestObserver
from titan_grpc.net.retry import DEFAULT_RETRY
from titan_grpc.paging import Page, PageRequest, cursor_int

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[A-Za-z0-9]{16,128}$")


def validate_credentials(settings: VenueSettings) -> list[str]:
    """Start-up check of key/secret format; messages never include the values."""
    key_format = (_KEY_RE, "16-128 letters and digits")
    return credential_problems(
        {
            "BINANCE_API_KEY": settings.credentials.api_key.reveal(),
            "BINANCE_API_SECRET": settings.credentials.api_secret.reveal(),
        },
        {"BINANCE_API_KEY": key_format, "BINANCE_API_SECRET": key_format},
    )


class BinanceExchange(ExchangeBackend):
    name = "binance"
    simulated = False

    def __init__(
        self,
        settings: VenueSettings,
        *,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy = DEFAULT_RETRY,
        total_timeout: float = 10.0,
        market_ttl_seconds: float = 3600.0,
        reconcile_delays: Sequence[float] = RECONCILE_DELAYS_SECONDS,
        recv_window_ms: int = endpoints.DEFAULT_RECV_WINDOW_MS,
        rate_limit_max_wait_seconds: float = 10.0,
        request_observer: RequestObserver | None = None,
        budgets: BudgetFactory = UNSHARED,
    ) -> None:
        problems = validate_credentials(settings)
        if problems:
            raise ConfigError(problems)
        self.testnet = settings.testnet
        base_url = settings.base_url or (
            endpoints.TESTNET_REST_URL if settings.testnet else endpoints.LIVE_REST_URL
        )
        self._ws_url = settings.ws_url or (
            endpoints.TESTNET_WS_URL if settings.testnet else endpoints.LIVE_WS_URL
        )
        self.frame_stats = FrameStats()
        self._key = settings.credentials.api_key
        self._secret = settings.credentials.api_secret
        self._clock = clock
        self._clock_sync = ClockSync(clock)
        # Per-plan overrides cap what exchangeInfo publishes (set_limit below).
        self._plan = settings.budget
        self._limiter = budgets.window(
            self.name,
            "weight",
            self._plan.weight_per_window or endpoints.DEFAULT_WEIGHT_LIMIT,
            endpoints.WEIGHT_WINDOW_SECONDS,
            clock=clock,
            max_wait_seconds=rate_limit_max_wait_seconds,
        )
        self._order_limiter = budgets.window(
            self.name,
            "orders",
            self._plan.orders_per_window or endpoints.DEFAULT_ORDER_LIMIT,
            endpoints.ORDER_WINDOW_SECONDS,
            clock=clock,
            max_wait_seconds=rate_limit_max_wait_seconds,
        )
        self._rest = RestClient(
            self.name,
            base_url,
            limiter=self._limiter,
            error_mapper=parse.parse_error,
            usage_observer=self._observe_usage,
            retry=retry,
            total_timeout=total_timeout,
            observer=request_observer,
        )
        self._market_cache = MarketCache(self._load_markets, market_ttl_seconds, clock)
        self._fees = AccountFees(
            Decimal(endpoints.DEFAULT_MAKER_FEE), Decimal(endpoints.DEFAULT_TAKER_FEE)
        )
        self._reconcile_delays = tuple(reconcile_delays)
        self._recv_window = recv_window_ms

    @property
    def credentials_configured(self) -> bool:
        return bool(self._key) and bool(self._secret)

    @property
    def rest(self) -> RestClient:
        return self._rest

    def rate_budget_used(self) -> float:
        return self._limiter.usage_ratio

    async def close(self) -> None:
        await self._rest.close()

    # ---- plumbing ------------------------------------------------------------------

    def _observe_usage(self, headers: Mapping[str, str]) -> None:
        used = headers.get(endpoints.USED_WEIGHT_HEADER)
        if used and used.isdigit():
            self._limiter.observe_used(int(used))
        orders = headers.get(endpoints.ORDER_COUNT_HEADER)
        if orders and orders.isdigit():
            self._order_limiter.observe_used(int(orders))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    async def _public(
        self, endpoint: Endpoint, params: Sequence[tuple[str, str]] = (), weight: int | None = None
    ) -> Any:
        request = RestRequest(
            endpoint.method,
            endpoint.path,
            query=auth.encode_params(params),
            weight=endpoint.weight if weight is None else weight,
            idempotent=endpoint.idempotent,
            endpoint=endpoint.name,
        )
        return (await self._rest.send(request)).json()

    def _require_keys(self) -> None:
        if not self.credentials_configured:
            raise NotConfigured(
                "binance: account and trading calls need BINANCE_API_KEY and BINANCE_API_SECRET",
                variable="BINANCE_API_KEY",
            )

    async def _signed(
        self, endpoint: Endpoint, params: Sequence[tuple[str, str]] = (), weight: int | None = None
    ) -> Any:
        self._require_keys()
        if not self._clock_sync.synced:
            await self.server_time()
        request = RestRequest(
            endpoint.method,
            endpoint.path,
            weight=endpoint.weight if weight is None else weight,
            idempotent=endpoint.idempotent,
            endpoint=endpoint.name,
        )

        async def sign(unsigned: RestRequest) -> RestRequest:
            # Signed per attempt: each retry carries a fresh timestamp.
            query = auth.signed_query(
                params, self._secret.reveal(), self._clock_sync.now_ms(), self._recv_window
            )
            return unsigned.with_signature(query, "", {"X-MBX-APIKEY": self._key.reveal()})

        try:
            response = await self._rest.send(request, sign)
        except AuthenticationError as error:
            if error.venue_code != "-1021":
                raise
            # Timestamp outside recvWindow is a definitive rejection (nothing executed):
            # resync the clock and send once more.
            await self.server_time()
            response = await self._rest.send(request, sign)
        return response.json()

    # ---- public --------------------------------------------------------------------

    async def server_time(self) -> datetime:
        sent = self._clock_sync.local_ms()
        answer = await self._public(endpoints.TIME)
        received = self._clock_sync.local_ms()
        venue_ms = int(answer["serverTime"])
        self._clock_sync.update(venue_ms, sent, received)
        return datetime.fromtimestamp(venue_ms / 1000, tz=UTC)

    async def check_auth(self) -> AuthCheck:
        account = await self._signed(endpoints.ACCOUNT, [("omitZeroBalances", "true")])
        self._learn_fees(account)
        permissions = [str(p).lower() for p in account.get("permissions", [])]
        if account.get("canTrade"):
            permissions.append("trade")
        return AuthCheck(permissions=tuple(dict.fromkeys(permissions)))

    def _learn_fees(self, account: Mapping[str, Any]) -> None:
        rates = parse.parse_commission_rates(account)
        if rates:
            self._fees.set_account(*rates)

    async def refresh_fees(self) -> None:
        # The account's commissionRates (account-wide); /api/v3/account/commission is
        # per symbol and would cost one request per market.
        if self.credentials_configured:
            self._learn_fees(await self._signed(endpoints.ACCOUNT, [("omitZeroBalances", "true")]))

    async def markets(self) -> dict[Symbol, Market]:
        return self._fees.apply(await self._market_cache.get())

    async def _load_markets(self) -> dict[Symbol, Market]:
        info = await self._public(endpoints.EXCHANGE_INFO)
        weight_limit = parse.parse_weight_limit(info)
        if weight_limit:
            capped = min(weight_limit, self._plan.weight_per_window or weight_limit)
            self._limiter.set_limit(capped)
        order_limit = parse.parse_order_limit(info)
        if order_limit:
            capped = min(order_limit, self._plan.orders_per_window or order_limit)
            self._order_limiter.set_limit(capped)
        return parse.parse_markets(info, self._fees.default.maker, self._fees.default.taker)

    async def ticker(self, symbol: Symbol) -> Ticker:
        market = await self.market(symbol)
        data = await self._public(endpoints.TICKER_24H, [("symbol", market.venue_symbol)])
        return parse.parse_ticker(data, market, self._now())

    async def order_book(self, symbol: Symbol, depth: int) -> OrderBook:
        market = await self.market(symbol)
        limit = endpoints.depth_limit(depth)
        data = await self._public(
            endpoints.DEPTH,
            [("symbol", market.venue_symbol), ("limit", str(limit))],
            weight=endpoints.depth_weight(limit),
        )
        return parse.parse_depth(data, market, depth, self._now())

    async def recent_trades(self, symbol: Symbol, limit: int) -> RecentTrades:
        market = await self.market(symbol)
        rows = await self._public(
            endpoints.TRADES, [("symbol", market.venue_symbol), ("limit", str(limit))]
        )
        return RecentTrades(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=market.venue_symbol,
            trades=tuple(parse.parse_trades(rows)),
            simulated=False,
            received_time=self._now(),
        )

    # ---- account -------------------------------------------------------------------

    async def balances(self) -> list[Balance]:
        account = await self._signed(endpoints.ACCOUNT, [("omitZeroBalances", "true")])
        self._learn_fees(account)
        return parse.parse_balances(account)

    async def place_order(self, request: OrderRequest) -> Order:
        market = await self.market(request.symbol)
        reference = None
        if request.type is OrderType.MARKET and market.min_notional > 0:
            ticker = await self.ticker(request.symbol)
            reference = ticker.ask if request.side is Side.BUY else ticker.bid
        check_order_filters(market, request, reference)
        kind = "LIMIT_MAKER" if request.post_only else parse.ORDER_TYPE_NAMES[request.type]
        params = [
            ("symbol", market.venue_symbol),
            ("side", parse.SIDE_NAMES[request.side]),
            ("type", kind),
        ]
        if request.type.has_limit_price and not request.post_only:
            params.append(("timeInForce", parse.TIME_IN_FORCE_NAMES[request.time_in_force]))
        if request.quote_quantity is not None:
            params.append(("quoteOrderQty", format_decimal(request.quote_quantity)))
        else:
            params.append(("quantity", format_decimal(request.quantity)))
        if request.price is not None:
            params.append(("price", format_decimal(request.price)))
        if request.stop_price is not None:
            params.append(("stopPrice", format_decimal(request.stop_price)))
        params += [("newClientOrderId", request.client_order_id), ("newOrderRespType", "FULL")]
        await self._order_limiter.acquire(1)  # the account's ORDERS count, besides weight
        try:
            data = await self._signed(endpoints.ORDER_NEW, params)
        except (AmbiguousOutcome, MalformedResponse) as error:
            # Possibly executed: find out by client order id, never send it again.
            return await self._reconcile(market, request.client_order_id, error)
        order = parse.parse_order(data, market, self._now())
        return dataclasses.replace(
            order, stop_price=request.stop_price, quote_quantity=request.quote_quantity
        )

    async def _reconcile(self, market: Market, client_order_id: str, cause: Exception) -> Order:
        async def lookup() -> Order:
            return await self.get_order(market.symbol, client_order_id=client_order_id)

        return await reconcile_by_client_id(
            self.name, client_order_id, lookup, self._reconcile_delays, cause
        )

    def _order_params(
        self, market: Market, order_id: str, client_order_id: str
    ) -> list[tuple[str, str]]:
        params = [("symbol", market.venue_symbol)]
        if order_id:
            params.append(("orderId", order_id))
        else:
            params.append(("origClientOrderId", client_order_id))
        return params

    async def _market_for_order(self, symbol: Symbol | None) -> Market:
        if symbol is None:
            raise InvalidArgument("symbol", "binance needs the symbol to find an order")
        return await self.market(symbol)

    async def cancel_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        market = await self._market_for_order(symbol)
        params = self._order_params(market, order_id, client_order_id)
        try:
            data = await self._signed(endpoints.ORDER_CANCEL, params)
        except OrderNotFound:
            # -2011 also answers cancels of orders that are already done (or that a
            # retried DELETE already cancelled): say which.
            existing = await self.get_order(
                market.symbol, order_id=order_id, client_order_id=client_order_id
            )
            if existing.status is OrderStatus.CANCELED:
                return existing
            raise OrderNotCancelable(
                f"binance: order {existing.order_id} is already {existing.status.value}",
                exchange=self.name,
            ) from None
        return parse.parse_order(data, market, self._now())

    async def get_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        market = await self._market_for_order(symbol)
        data = await self._signed(
            endpoints.ORDER_QUERY, self._order_params(market, order_id, client_order_id)
        )
        return parse.parse_order(data, market, self._now())

    async def open_orders(self, symbol: Symbol | None) -> list[Order]:
        if symbol is None:
            rows = await self._signed(
                endpoints.OPEN_ORDERS, weight=endpoints.OPEN_ORDERS_ALL_WEIGHT
            )
        else:
            market = await self.market(symbol)
            rows = await self._signed(endpoints.OPEN_ORDERS, [("symbol", market.venue_symbol)])
        by_venue_symbol = {m.venue_symbol: m for m in (await self.markets()).values()}
        now = self._now()
        return [
            parse.parse_order(row, by_venue_symbol[row["symbol"]], now)
            for row in rows
            if row.get("symbol") in by_venue_symbol
        ]

    async def cancel_all_orders(self, symbol: Symbol | None) -> list[Order]:
        # DELETE /api/v3/openOrders cancels one symbol's orders; every symbol: one per
        # symbol that has open orders.
        if symbol is None:
            symbols = sorted({o.symbol for o in await self.open_orders(None)}, key=str)
        else:
            symbols = [symbol]
        canceled: list[Order] = []
        for each in symbols:
            market = await self.market(each)
            try:
                rows = await self._signed(
                    endpoints.CANCEL_OPEN_ORDERS, [("symbol", market.venue_symbol)]
                )
            except OrderNotFound:
                continue  # -2011: nothing open on this symbol
            now = self._now()
            canceled += [parse.parse_order(row, market, now) for row in rows if "orderId" in row]
        return canceled

    async def my_trades(
        self, symbol: Symbol | None, *, order_id: str = "", limit: int = 100
    ) -> list[Fill]:
        if symbol is None:
            raise InvalidArgument("symbol", "binance lists trades per symbol; give the symbol")
        market = await self.market(symbol)
        params = [("symbol", market.venue_symbol), ("limit", str(limit))]
        weight = None
        if order_id:
            params.insert(1, ("orderId", order_id))
            weight = endpoints.MY_TRADES_BY_ORDER_WEIGHT
        rows = await self._signed(endpoints.MY_TRADES, params, weight=weight)
        fills = [parse.parse_my_trade(row, market) for row in rows]
        fills.reverse()  # newest first
        return fills

    async def trades_page(
        self, symbol: Symbol | None, order_id: str, page: PageRequest
    ) -> Page[Fill]:
        """Oldest first: Binance pages fills forward by trade id (fromId); the time range
        is applied to what comes back (fromId cannot be combined with it)."""
        if symbol is None:
            raise InvalidArgument("symbol", "binance lists trades per symbol; give the symbol")
        market = await self.market(symbol)
        if order_id:
            # One order's fills: all of them, in one page.
            rows = await self._signed(
                endpoints.MY_TRADES,
                [("symbol", market.venue_symbol), ("orderId", order_id)],
                weight=endpoints.MY_TRADES_BY_ORDER_WEIGHT,
            )
            fills = [parse.parse_my_trade(row, market) for row in rows]
            return Page([f for f in fills if page.covers(f.time)], None)
        from_id = cursor_int(page.cursor, "from_id") if page.cursor else 0
        rows = await self._signed(
            endpoints.MY_TRADES,
            [
                ("symbol", market.venue_symbol),
                ("fromId", str(from_id)),
                ("limit", str(min(page.size, endpoints.MY_TRADES_MAX_LIMIT))),
            ],
        )
        fills = [parse.parse_my_trade(row, market) for row in rows]
        past_end = page.end is not None and any(f.time >= page.end for f in fills)
        more = len(rows) >= min(page.size, endpoints.MY_TRADES_MAX_LIMIT) and not past_end
        cursor = {"from_id": str(int(rows[-1]["id"]) + 1)} if more and rows else None
        return Page([f for f in fills if page.covers(f.time)], cursor)

    async def ledger(self, asset: str | None, limit: int) -> list[LedgerEntry]:
        raise FeatureUnavailable(
            "binance spot has no ledger endpoint on the REST API TITAN uses; "
            "use ListTrades for fills"
        )

    # ---- streams (WebSocket feeds; see stream.py) ------------------------------------

    async def watch_quotes(self, symbol: Symbol) -> AsyncIterator[Quote | FeedInterrupted]:
        market = await self.market(symbol)
        fetch = functools.partial(self.ticker, symbol)
        async for item in stream.watch_quotes(
            self._ws_url, market.venue_symbol, fetch, self.frame_stats
        ):
            yield item

    async def book_feed(self, symbol: Symbol) -> BookFeed:
        market = await self.market(symbol)
        fetch = functools.partial(self.order_book, symbol, stream.SNAPSHOT_DEPTH)
        return stream.book_feed(self._ws_url, market.venue_symbol, fetch, self.frame_stats)
