"""KuCoin spot behind the ExchangeBackend interface: the REST client (client.py), parse
and the WebSocket feeds (stream.py)."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from titan_grpc.config import VenueSettings
from titan_grpc.domain import (
    AccountEvent,
    AccountFeedConnected,
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
    ConfigError,
    InvalidArgument,
    MalformedResponse,
    NotConfigured,
    OrderNotCancelable,
    OrderNotFound,
    OrderTypeUnsupported,
    TitanError,
)
from titan_grpc.exchanges.base import BookFeed, ExchangeBackend
from titan_grpc.exchanges.common import (
    RECONCILE_DELAYS_SECONDS,
    MarketCache,
    credential_problems,
    reconcile_by_client_id,
)
from titan_grpc.exchanges.fees import AccountFees
from titan_grpc.exchanges.filters import check_order_filters
from titan_grpc.exchanges.kucoin import endpoints, parse, stream
from titan_grpc.exchanges.kucoin.client import KucoinClient
from titan_grpc.exchanges.streaming import FrameStats
from titan_grpc.net import RetryPolicy
from titan_grpc.net.ratelimit import UNSHARED, BudgetFactory
from titan_grpc.net.rest import RequestObserver
from titan_grpc.net.retry import DEFAULT_RETRY
from titan_grpc.paging import Page, PageRequest, cursor_int

log = logging.getLogger(__name__)

FEE_RETRY_SECONDS = 60.0

_KEY_RE = re.compile(r"^[A-Za-z0-9-]{16,128}$")
NO_SANDBOX = (
    "KUCOIN_SANDBOX: KuCoin discontinued its public sandbox, so 'true' cannot be honoured; "
    "set KUCOIN_SANDBOX=false to use live KuCoin, or leave it unset for public market data only"
)


def validate_settings(settings: VenueSettings) -> list[str]:
    """Start-up checks: sandbox refusal and credential formats; never echoes values."""
    problems = [NO_SANDBOX] if settings.testnet and settings.testnet_explicit else []
    key_format = (_KEY_RE, "16-128 letters, digits and '-'")
    return problems + credential_problems(
        {
            "KUCOIN_API_KEY": settings.credentials.api_key.reveal(),
            "KUCOIN_API_SECRET": settings.credentials.api_secret.reveal(),
            "KUCOIN_PASSPHRASE": settings.credentials.passphrase.reveal(),
        },
        {"KUCOIN_API_KEY": key_format, "KUCOIN_API_SECRET": key_format},
    )


class KucoinExchange(ExchangeBackend):
    name = "kucoin"
    simulated = False
    testnet = False  # there is no KuCoin sandbox

    def __init__(
        self,
        settings: VenueSettings,
        *,
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy = DEFAULT_RETRY,
        total_timeout: float = 10.0,
        market_ttl_seconds: float = 3600.0,
        reconcile_delays: Sequence[float] = RECONCILE_DELAYS_SECONDS,
        rate_limit_max_wait_seconds: float = 10.0,
        request_observer: RequestObserver | None = None,
        budgets: BudgetFactory = UNSHARED,
    ) -> None:
        problems = validate_settings(settings)
        if problems:
            raise ConfigError(problems)
        # Unset KUCOIN_SANDBOX defaults to "sandbox", which does not exist: read-only then.
        self._live_trading = not settings.testnet
        self._credentials = settings.credentials
        self._clock = clock
        self._api = KucoinClient(
            settings.base_url or endpoints.LIVE_REST_URL,
            settings,
            live_trading=self._live_trading,
            clock=clock,
            budgets=budgets,
            retry=retry,
            total_timeout=total_timeout,
            rate_limit_max_wait_seconds=rate_limit_max_wait_seconds,
            request_observer=request_observer,
        )
        self._market_cache = MarketCache(self._load_markets, market_ttl_seconds, clock)
        self._fees = AccountFees(
            Decimal(endpoints.DEFAULT_MAKER_FEE), Decimal(endpoints.DEFAULT_TAKER_FEE)
        )
        self.frame_stats = FrameStats()
        self._reconcile_delays = tuple(reconcile_delays)
        # KuCoin's rates depend on the symbol's fee class: fetched per symbol asked about.
        self._fee_symbols: set[Symbol] = set()
        self._fee_lock = asyncio.Lock()
        self._fee_retry_at = float("-inf")

    @property
    def credentials_configured(self) -> bool:
        return bool(self._credentials.api_key) and self._live_trading

    def rate_budget_used(self) -> float:
        return self._api.rate_budget_used()

    async def close(self) -> None:
        await self._api.close()

    # ---- plumbing ------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    # ---- public --------------------------------------------------------------------

    async def server_time(self) -> datetime:
        return await self._api.server_time()

    async def check_auth(self) -> AuthCheck:
        await self._api.signed(endpoints.ACCOUNTS, [("type", "trade")])
        return AuthCheck(permissions=("general", "spot"))

    async def markets(self) -> dict[Symbol, Market]:
        return self._fees.apply(await self._market_cache.get())

    async def refresh_fees(self) -> None:
        if self.credentials_configured and self._fee_symbols:
            await self._fetch_fees(sorted(self._fee_symbols, key=lambda s: s.canonical))

    async def _fetch_fees(self, symbols: Sequence[Symbol]) -> None:
        markets = await self._market_cache.get()
        wanted = {markets[s].venue_symbol: s for s in symbols if s in markets}
        names = list(wanted)
        for start in range(0, len(names), endpoints.TRADE_FEES_BATCH):
            batch = ",".join(names[start : start + endpoints.TRADE_FEES_BATCH])
            rows = await self._api.signed(endpoints.TRADE_FEES, [("symbols", batch)])
            for name, (maker, taker) in parse.parse_trade_fees(rows).items():
                if name in wanted:
                    self._fees.set_symbol(wanted[name], maker, taker)

    async def market(self, symbol: Symbol) -> Market:
        market = await super().market(symbol)
        if not self.credentials_configured or self._fees.knows(symbol):
            return market
        self._fee_symbols.add(symbol)
        async with self._fee_lock:
            if self._fees.knows(symbol) or self._clock() < self._fee_retry_at:
                return self._fees.with_rates(market)
            try:
                await self._fetch_fees([symbol])
            except TitanError as error:
                # Market data must not fail for want of fees: defaults until the next try.
                log.warning("kucoin: account fees for %s unavailable: %s", symbol, error)
                self._fee_retry_at = self._clock() + FEE_RETRY_SECONDS
        return self._fees.with_rates(market)

    async def _load_markets(self) -> dict[Symbol, Market]:
        rows = await self._api.public(endpoints.SYMBOLS)
        return parse.parse_symbols(rows, self._fees.default.maker, self._fees.default.taker)

    async def ticker(self, symbol: Symbol) -> Ticker:
        market = await self.market(symbol)
        params = [("symbol", market.venue_symbol)]
        # Best bid/ask from level 1 (unambiguous, with sizes); 24h figures from stats.
        top, stats = await asyncio.gather(
            self._api.public(endpoints.LEVEL1, params), self._api.public(endpoints.STATS, params)
        )
        last = parse.optional(stats, "last")
        change_rate = parse.optional(stats, "changeRate")
        change_price = parse.optional(stats, "changePrice")
        return Ticker(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=market.venue_symbol,
            bid=parse.optional(top, "bestBid"),
            bid_size=parse.optional(top, "bestBidSize"),
            ask=parse.optional(top, "bestAsk"),
            ask_size=parse.optional(top, "bestAskSize"),
            last=last if last is not None else parse.optional(top, "price"),
            open_24h=last - change_price if last is not None and change_price is not None else None,
            high_24h=parse.optional(stats, "high"),
            low_24h=parse.optional(stats, "low"),
            volume_24h=parse.optional(stats, "vol"),
            quote_volume_24h=parse.optional(stats, "volValue"),
            change_percent_24h=change_rate * 100 if change_rate is not None else None,
            simulated=False,
            venue_time=parse.from_ms(stats.get("time") or top.get("time")),
            received_time=self._now(),
        )

    async def order_book(self, symbol: Symbol, depth: int) -> OrderBook:
        market = await self.market(symbol)
        endpoint = endpoints.LEVEL2_20 if depth <= 20 else endpoints.LEVEL2_100
        payload = await self._api.public(endpoint, [("symbol", market.venue_symbol)])
        return parse.parse_book(payload, market, depth, self._now())

    async def recent_trades(self, symbol: Symbol, limit: int) -> RecentTrades:
        market = await self.market(symbol)
        rows = await self._api.public(endpoints.HISTORIES, [("symbol", market.venue_symbol)])
        return RecentTrades(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=market.venue_symbol,
            trades=tuple(parse.parse_trades(rows)[:limit]),
            simulated=False,
            received_time=self._now(),
        )

    # ---- account -------------------------------------------------------------------

    async def balances(self) -> list[Balance]:
        return parse.parse_accounts(await self._api.signed(endpoints.ACCOUNTS, [("type", "trade")]))

    async def place_order(self, request: OrderRequest) -> Order:
        if request.type.is_stop:
            raise OrderTypeUnsupported(
                "kucoin: stop orders are not supported (KuCoin's HF order API, which TITAN "
                "uses, has no stop orders)",
                exchange=self.name,
            )
        market = await self.market(request.symbol)
        reference = None
        if request.type is OrderType.MARKET and market.min_notional > 0:
            ticker = await self.ticker(request.symbol)
            reference = ticker.ask if request.side is Side.BUY else ticker.bid
        check_order_filters(market, request, reference)
        body: dict[str, Any] = {
            "clientOid": request.client_order_id,
            "side": request.side.value,
            "symbol": market.venue_symbol,
            "type": request.type.value,
        }
        if request.quote_quantity is not None:
            body["funds"] = format_decimal(request.quote_quantity)
        else:
            body["size"] = format_decimal(request.quantity)
        if request.type is OrderType.LIMIT:
            body["price"] = format_decimal(request.price)
            body["timeInForce"] = parse.TIME_IN_FORCE_NAMES[request.time_in_force]
            if request.post_only:
                body["postOnly"] = True
        try:
            placed = await self._api.signed(endpoints.ORDER_NEW, body=body)
        except (AmbiguousOutcome, MalformedResponse) as error:
            return await self._reconcile(market, request.client_order_id, error)
        # The HF placement answers only with ids: read the order for its state and fills.
        order = await self.get_order(request.symbol, order_id=str(placed["orderId"]))
        return replace(order, quote_quantity=request.quote_quantity)

    async def _reconcile(self, market: Market, client_order_id: str, cause: Exception) -> Order:
        async def lookup() -> Order:
            return await self.get_order(market.symbol, client_order_id=client_order_id)

        return await reconcile_by_client_id(
            self.name, client_order_id, lookup, self._reconcile_delays, cause
        )

    async def _market_for_order(self, symbol: Symbol | None) -> Market:
        if symbol is None:
            raise InvalidArgument("symbol", "kucoin needs the symbol to find an order")
        return await self.market(symbol)

    async def get_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        market = await self._market_for_order(symbol)
        params = [("symbol", market.venue_symbol)]
        if order_id:
            row = await self._api.signed(endpoints.ORDER_BY_ID, params, order=order_id)
        else:
            row = await self._api.signed(endpoints.ORDER_BY_CLIENT, params, client=client_order_id)
        if not row:
            raise OrderNotFound("kucoin: no such order", exchange=self.name)
        return parse.parse_order(row, market, self._now())

    async def cancel_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        existing = await self.get_order(symbol, order_id=order_id, client_order_id=client_order_id)
        if not existing.status.is_open:
            raise OrderNotCancelable(
                f"kucoin: order {existing.order_id} is already {existing.status.value}",
                exchange=self.name,
            )
        params = [("symbol", existing.venue_symbol)]
        await self._api.signed(endpoints.CANCEL_BY_ID, params, order=existing.order_id)
        try:
            return await self.get_order(symbol, order_id=existing.order_id)
        except OrderNotFound:
            return replace(
                existing,
                status=OrderStatus.CANCELED,
                updated_time=self._now(),
                status_reason="canceled",
            )

    async def open_orders(self, symbol: Symbol | None) -> list[Order]:
        if symbol is None:
            # The HF API lists active orders per symbol; it names the symbols that have some.
            answer = await self._api.signed(endpoints.ACTIVE_SYMBOLS)
            by_venue = {m.venue_symbol: m.symbol for m in (await self.markets()).values()}
            symbols = [by_venue[n] for n in (answer or {}).get("symbols") or [] if n in by_venue]
            return [order for each in symbols for order in await self.open_orders(each)]
        market = await self.market(symbol)
        rows = await self._api.signed(endpoints.ACTIVE_ORDERS, [("symbol", market.venue_symbol)])
        now = self._now()
        return [parse.parse_order(row, market, now) for row in rows or []]

    async def cancel_all_orders(self, symbol: Symbol | None) -> list[Order]:
        # DELETE /api/v1/hf/orders?symbol= only requests the cancels: read the orders
        # first and report the ones no longer active after.
        before = await self.open_orders(symbol)
        for each in sorted({order.symbol for order in before}, key=str):
            market = await self.market(each)
            await self._api.signed(endpoints.CANCEL_BY_SYMBOL, [("symbol", market.venue_symbol)])
        still_open = {order.order_id for order in await self.open_orders(symbol)}
        now = self._now()
        return [
            replace(order, status=OrderStatus.CANCELED, updated_time=now, status_reason="canceled")
            for order in before
            if order.order_id not in still_open
        ]

    async def my_trades(
        self, symbol: Symbol | None, *, order_id: str = "", limit: int = 100
    ) -> list[Fill]:
        if symbol is None:
            raise InvalidArgument("symbol", "kucoin lists fills per symbol; give the symbol")
        market = await self.market(symbol)
        fills: list[Fill] = []
        last_id = ""
        while len(fills) < limit:
            params = [("symbol", market.venue_symbol), ("limit", str(min(100, limit - len(fills))))]
            if order_id:
                params.append(("orderId", order_id))
            if last_id:
                params.append(("lastId", last_id))
            page = await self._api.signed(endpoints.FILLS, params)
            items = page.get("items") or []
            fills += [parse.parse_fill(row, market) for row in items]
            last_id = str(page.get("lastId") or "")
            if not items or not last_id:
                break
        return fills[:limit]

    async def ledger(self, asset: str | None, limit: int) -> list[LedgerEntry]:
        entries: list[LedgerEntry] = []
        page_number = 1
        while len(entries) < limit:
            params = [("currentPage", str(page_number)), ("pageSize", str(endpoints.PAGE_SIZE))]
            if asset:
                params.insert(0, ("currency", asset))
            page = await self._api.signed(endpoints.LEDGERS, params)
            entries += [parse.parse_ledger_entry(row) for row in page.get("items") or []]
            if page_number >= int(page.get("totalPage") or 0):
                break
            page_number += 1
        return entries[:limit]

    @staticmethod
    def _time_range(page: PageRequest) -> list[tuple[str, str]]:
        params = []
        if page.start is not None:
            params.append(("startAt", str(int(page.start.timestamp() * 1000))))
        if page.end is not None:
            params.append(("endAt", str(int(page.end.timestamp() * 1000) - 1)))
        return params

    async def trades_page(
        self, symbol: Symbol | None, order_id: str, page: PageRequest
    ) -> Page[Fill]:
        """Newest first, on the HF fills' lastId cursor (at most 100 per request)."""
        if symbol is None:
            raise InvalidArgument("symbol", "kucoin lists fills per symbol; give the symbol")
        market = await self.market(symbol)
        fills: list[Fill] = []
        last_id = page.cursor.get("last_id", "") if page.cursor else ""
        if page.cursor and not last_id.isdigit():
            raise InvalidArgument("page_token", "is not a page token this server issued")
        while len(fills) < page.size:
            params = [
                ("symbol", market.venue_symbol),
                ("limit", str(min(endpoints.FILLS_MAX_LIMIT, page.size - len(fills)))),
                *self._time_range(page),
            ]
            if order_id:
                params.append(("orderId", order_id))
            if last_id:
                params.append(("lastId", last_id))
            answer = await self._api.signed(endpoints.FILLS, params)
            items = answer.get("items") or []
            fills += [parse.parse_fill(row, market) for row in items]
            last_id = str(answer.get("lastId") or "")
            if not items or not last_id or last_id == "0":
                last_id = ""
                break
        cursor = {"last_id": last_id} if last_id else None
        return Page([f for f in fills if page.covers(f.time)], cursor)

    async def ledger_page(self, asset: str | None, page: PageRequest) -> Page[LedgerEntry]:
        """Newest first, by page number (currentPage/pageSize)."""
        number = cursor_int(page.cursor, "page") if page.cursor else 1
        params = [
            ("currentPage", str(number)),
            ("pageSize", str(min(page.size, endpoints.LEDGER_MAX_PAGE_SIZE))),
            *self._time_range(page),
        ]
        if asset:
            params.insert(0, ("currency", asset))
        answer = await self._api.signed(endpoints.LEDGERS, params)
        entries = [parse.parse_ledger_entry(row) for row in answer.get("items") or []]
        more = number < int(answer.get("totalPage") or 0)
        cursor = {"page": str(number + 1)} if more else None
        return Page([e for e in entries if page.covers(e.time)], cursor)

    # ---- streams (WebSocket feeds; see stream.py) ------------------------------------

    async def _bullet(self) -> Any:
        return await self._api.public(endpoints.BULLET_PUBLIC)

    async def watch_quotes(self, symbol: Symbol) -> AsyncIterator[Quote | FeedInterrupted]:
        market = await self.market(symbol)
        fetch = functools.partial(self.ticker, symbol)
        async for item in stream.watch_quotes(
            market.venue_symbol, self._bullet, fetch, self.frame_stats
        ):
            yield item

    async def full_order_book(self, symbol: Symbol) -> OrderBook:
        """Every level (signed; KuCoin serves only the top 100 without keys)."""
        market = await self.market(symbol)
        payload = await self._api.signed(endpoints.FULL_BOOK, [("symbol", market.venue_symbol)])
        every_level = max(len(payload.get("bids") or ()), len(payload.get("asks") or ()))
        return parse.parse_book(payload, market, every_level, self._now())

    async def book_feed(self, symbol: Symbol) -> BookFeed:
        market = await self.market(symbol)
        # The full book aligns every level when signed calls are allowed; else the top 100.
        if self.credentials_configured:
            fetch = functools.partial(self.full_order_book, symbol)
        else:
            fetch = functools.partial(self.order_book, symbol, stream.SNAPSHOT_DEPTH)
        return stream.book_feed(market.venue_symbol, self._bullet, fetch, self.frame_stats)

    def account_feed_error(self) -> TitanError | None:
        if not self._credentials.api_key:
            return NotConfigured(
                "kucoin: the account streams need KUCOIN_API_KEY, KUCOIN_API_SECRET "
                "and KUCOIN_PASSPHRASE",
                variable="KUCOIN_API_KEY",
            )
        if not self._live_trading:
            return NotConfigured(
                "kucoin: KuCoin has no sandbox; set KUCOIN_SANDBOX=false to use your keys on "
                "live KuCoin",
                variable="KUCOIN_SANDBOX",
            )
        return None

    async def watch_account(
        self,
    ) -> AsyncIterator[AccountEvent | AccountFeedConnected | FeedInterrupted]:
        async def bullet() -> Any:
            return await self._api.signed(endpoints.BULLET_PRIVATE)

        async def by_symbol() -> dict[str, Market]:
            return {m.venue_symbol: m for m in (await self.markets()).values()}

        async def fetch_order(market: Market, order_id: str) -> Order:
            return await self.get_order(market.symbol, order_id=order_id)

        async for item in stream.watch_account(bullet, by_symbol, fetch_order, self.frame_stats):
            yield item
