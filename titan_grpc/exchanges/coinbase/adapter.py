"""Coinbase Exchange behind the ExchangeBackend interface: the REST client (client.py),
parse and the WebSocket feeds (stream.py)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import functools
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from titan_grpc.config import VenueSettings
from titan_grpc.domain import (
    AccountEvent,
    AccountFeedConnected,
    AuthCheck,
    Balance,
    BalanceUpdate,
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
from titan_grpc.exchanges.base import BookFeed, ExchangeBackend, find_market
from titan_grpc.exchanges.coinbase import auth, endpoints, parse, stream
from titan_grpc.exchanges.coinbase.client import CoinbaseClient
from titan_grpc.exchanges.coinbase.endpoints import Endpoint
from titan_grpc.exchanges.common import (
    RECONCILE_DELAYS_SECONDS,
    MarketCache,
    credential_problems,
    reconcile_by_client_id,
)
from titan_grpc.exchanges.fees import AccountFees
from titan_grpc.exchanges.filters import check_order_filters
from titan_grpc.exchanges.streaming import FrameStats
from titan_grpc.net import ClockSync, RetryPolicy
from titan_grpc.net.ratelimit import UNSHARED, BudgetFactory
from titan_grpc.net.rest import RequestObserver
from titan_grpc.net.retry import DEFAULT_RETRY
from titan_grpc.paging import Page, PageRequest

log = logging.getLogger(__name__)

_KEY_RE = re.compile(r"^[A-Za-z0-9]{16,128}$")
_CLIENT_IDS_REMEMBERED = 10_000
_OPEN_STATUSES = ("open", "pending", "active")


def validate_credentials(settings: VenueSettings) -> list[str]:
    """Start-up check of key, secret and passphrase; never echoes values."""
    values = {
        "COINBASE_API_KEY": settings.credentials.api_key.reveal(),
        "COINBASE_API_SECRET": settings.credentials.api_secret.reveal(),
        "COINBASE_PASSPHRASE": settings.credentials.passphrase.reveal(),
    }
    problems = credential_problems(
        values, {"COINBASE_API_KEY": (_KEY_RE, "16-128 letters and digits")}
    )
    if values["COINBASE_API_SECRET"]:
        try:
            base64.b64decode(values["COINBASE_API_SECRET"], validate=True)
        except (binascii.Error, ValueError):
            problems.append("COINBASE_API_SECRET: expected the base64 secret Coinbase issued")
    return problems


class CoinbaseExchange(ExchangeBackend):
    name = "coinbase"
    simulated = False

    def __init__(
        self,
        settings: VenueSettings,
        *,
        quote_aliases: tuple[tuple[str, str], ...] = (),
        clock: Callable[[], float] = time.time,
        retry: RetryPolicy = DEFAULT_RETRY,
        total_timeout: float = 10.0,
        market_ttl_seconds: float = 3600.0,
        ws_idle_timeout_seconds: float = stream.HEARTBEAT_SILENCE_SECONDS,
        reconcile_delays: Sequence[float] = RECONCILE_DELAYS_SECONDS,
        rate_limit_max_wait_seconds: float = 10.0,
        request_observer: RequestObserver | None = None,
        budgets: BudgetFactory = UNSHARED,
    ) -> None:
        problems = validate_credentials(settings)
        if problems:
            raise ConfigError(problems)
        self.testnet = settings.testnet
        base_url = settings.base_url or (
            endpoints.SANDBOX_REST_URL if settings.testnet else endpoints.LIVE_REST_URL
        )
        self._credentials = settings.credentials
        self._aliases = quote_aliases
        self._clock = clock
        self._clock_sync = ClockSync(clock)
        self._api = CoinbaseClient(
            base_url,
            settings,
            clock_sync=self._clock_sync,
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
        self._ws_idle_timeout = ws_idle_timeout_seconds
        self._ws_url = settings.ws_url or (
            endpoints.SANDBOX_WS_URL if settings.testnet else endpoints.LIVE_WS_URL
        )
        self.frame_stats = FrameStats()
        self._reconcile_delays = tuple(reconcile_delays)
        # Coinbase only knows the UUID we derived from a client order id: remember ours.
        self._client_ids: OrderedDict[str, str] = OrderedDict()

    @property
    def credentials_configured(self) -> bool:
        return bool(self._credentials.api_key)

    def rate_budget_used(self) -> float:
        return self._api.rate_budget_used()

    async def close(self) -> None:
        await self._api.close()

    # ---- plumbing ------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), tz=UTC)

    def _remember(self, client_order_id: str) -> str:
        venue_oid = auth.venue_client_oid(client_order_id)
        self._client_ids[venue_oid] = client_order_id
        self._client_ids.move_to_end(venue_oid)
        while len(self._client_ids) > _CLIENT_IDS_REMEMBERED:
            self._client_ids.popitem(last=False)
        return venue_oid

    def _client_id_of(self, row: dict[str, Any]) -> str:
        venue_oid = str(row.get("client_oid") or "")
        return self._client_ids.get(venue_oid, venue_oid)

    async def _market(self, symbol: Symbol, *, trading: bool = False) -> tuple[Market, str]:
        markets = await self.markets()
        if trading:
            return await self.market(symbol), ""  # orders never use a quote alias
        return find_market(self.name, markets, symbol, self._aliases)

    # ---- public --------------------------------------------------------------------

    async def server_time(self) -> datetime:
        return await self._api.server_time()

    async def check_auth(self) -> AuthCheck:
        await self._api.signed(endpoints.ACCOUNTS)
        return AuthCheck(permissions=("view", "trade"))

    async def markets(self) -> dict[Symbol, Market]:
        return self._fees.apply(await self._market_cache.get())

    async def refresh_fees(self) -> None:
        # GET /fees: the account's tier, one rate pair for every product.
        if self.credentials_configured:
            self._fees.set_account(*parse.parse_fees(await self._api.signed(endpoints.FEES)))

    async def _load_markets(self) -> dict[Symbol, Market]:
        rows = await self._api.public(endpoints.PRODUCTS)
        return parse.parse_products(rows, self._fees.default.maker, self._fees.default.taker)

    async def market(self, symbol: Symbol) -> Market:
        """Exact markets only: orders never go to a quote alias's market."""
        return (find_market(self.name, await self.markets(), symbol))[0]

    async def market_for_data(self, symbol: Symbol) -> Market:
        return (await self._market(symbol))[0]

    async def ticker(self, symbol: Symbol) -> Ticker:
        market, note = await self._market(symbol)
        product = market.venue_symbol
        tick, stats = await asyncio.gather(
            self._api.public(endpoints.TICKER, product=product),
            self._api.public(endpoints.STATS, product=product),
        )
        last, opened = parse.optional(stats, "last"), parse.optional(stats, "open")
        change = None
        if last is not None and opened:
            change = ((last - opened) * 100 / opened).quantize(Decimal("0.01"))
        volume, price = parse.optional(stats, "volume"), parse.optional(tick, "price")
        return Ticker(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=product,
            bid=parse.optional(tick, "bid"),
            bid_size=None,
            ask=parse.optional(tick, "ask"),
            ask_size=None,
            last=price if price is not None else last,
            open_24h=opened,
            high_24h=parse.optional(stats, "high"),
            low_24h=parse.optional(stats, "low"),
            volume_24h=volume,
            quote_volume_24h=volume * price if volume is not None and price is not None else None,
            change_percent_24h=change,
            simulated=False,
            venue_time=parse.parse_time(tick.get("time")),
            received_time=self._now(),
            note=note,
        )

    async def order_book(self, symbol: Symbol, depth: int) -> OrderBook:
        market, note = await self._market(symbol)
        data = await self._api.public(endpoints.BOOK, [("level", "2")], product=market.venue_symbol)
        book = parse.parse_book(data, market, depth, self._now())
        return dataclasses.replace(book, symbol=symbol, note=note)

    async def recent_trades(self, symbol: Symbol, limit: int) -> RecentTrades:
        market, note = await self._market(symbol)
        rows = await self._api.public(
            endpoints.TRADES, [("limit", str(limit))], product=market.venue_symbol
        )
        return RecentTrades(
            exchange=self.name,
            symbol=symbol,
            venue_symbol=market.venue_symbol,
            trades=tuple(parse.parse_trades(rows)[:limit]),
            simulated=False,
            received_time=self._now(),
            note=note,
        )

    # ---- account -------------------------------------------------------------------

    async def balances(self) -> list[Balance]:
        return parse.parse_accounts(await self._api.signed(endpoints.ACCOUNTS))

    async def place_order(self, request: OrderRequest) -> Order:
        if request.type is OrderType.STOP_MARKET:
            raise OrderTypeUnsupported(
                "coinbase: Coinbase Exchange takes stop orders as stop-limit only; "
                "use ORDER_TYPE_STOP_LIMIT",
                exchange=self.name,
            )
        market, _ = await self._market(request.symbol, trading=True)
        reference = None
        if request.type is OrderType.MARKET and market.min_notional > 0:
            book = await self.order_book(request.symbol, 1)
            side = book.asks if request.side is Side.BUY else book.bids
            reference = side[0].price if side else None
        check_order_filters(market, request, reference)
        body: dict[str, Any] = {
            "client_oid": self._remember(request.client_order_id),
            "product_id": market.venue_symbol,
            "side": request.side.value,
            "type": request.type.triggered.value,
        }
        if request.quote_quantity is not None:
            body["funds"] = format_decimal(request.quote_quantity)
        else:
            body["size"] = format_decimal(request.quantity)
        if request.type.has_limit_price:
            body["price"] = format_decimal(request.price)
            body["time_in_force"] = parse.TIME_IN_FORCE_NAMES[request.time_in_force]
            if request.post_only:
                body["post_only"] = True
        if request.stop_price is not None:
            # "entry" triggers at or above stop_price, "loss" at or below.
            body["stop"] = "entry" if request.side is Side.BUY else "loss"
            body["stop_price"] = format_decimal(request.stop_price)
        try:
            row = await self._api.signed(endpoints.ORDER_NEW, body=body)
        except (AmbiguousOutcome, MalformedResponse) as error:
            return await self._reconcile(market, request.client_order_id, error)
        order = parse.parse_order(row, market, request.client_order_id, self._now())
        return dataclasses.replace(
            order, stop_price=request.stop_price, quote_quantity=request.quote_quantity
        )

    async def _reconcile(self, market: Market, client_order_id: str, cause: Exception) -> Order:
        async def lookup() -> Order:
            return await self.get_order(market.symbol, client_order_id=client_order_id)

        return await reconcile_by_client_id(
            self.name, client_order_id, lookup, self._reconcile_delays, cause
        )

    async def _order_row(self, order_id: str, client_order_id: str) -> dict[str, Any]:
        if order_id:
            row: dict[str, Any] = await self._api.signed(endpoints.ORDER_BY_ID, order=order_id)
        else:
            row = await self._api.signed(
                endpoints.ORDER_BY_CLIENT, client=self._remember(client_order_id)
            )
        return row

    async def _to_order(self, row: dict[str, Any], client_order_id: str = "") -> Order:
        markets = {m.venue_symbol: m for m in (await self.markets()).values()}
        market = markets.get(str(row.get("product_id")))
        if market is None:
            raise OrderNotFound(
                f"coinbase order {row.get('id')} is on an unknown product", exchange=self.name
            )
        return parse.parse_order(
            row, market, client_order_id or self._client_id_of(row), self._now()
        )

    async def get_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        row = await self._order_row(order_id, client_order_id)
        return await self._to_order(row, client_order_id)

    async def cancel_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order:
        # Coinbase answers a cancel with the bare id and may purge cancelled orders that
        # never filled, so read the order first and report it as cancelled after.
        existing = await self.get_order(symbol, order_id=order_id, client_order_id=client_order_id)
        if not existing.status.is_open:
            raise OrderNotCancelable(
                f"coinbase: order {existing.order_id} is already {existing.status.value}",
                exchange=self.name,
            )
        await self._api.signed(
            endpoints.CANCEL_BY_ID, [("product_id", existing.venue_symbol)], order=existing.order_id
        )
        return dataclasses.replace(
            existing,
            status=OrderStatus.CANCELED,
            updated_time=self._now(),
            status_reason="canceled",
        )

    async def open_orders(self, symbol: Symbol | None) -> list[Order]:
        params = [("status", status) for status in _OPEN_STATUSES]
        if symbol is not None:
            params.append(("product_id", (await self.market(symbol)).venue_symbol))
        rows = await self._api.paged(endpoints.ORDERS, params, 1000)
        return [await self._to_order(row) for row in rows]

    async def cancel_all_orders(self, symbol: Symbol | None) -> list[Order]:
        # DELETE /orders[?product_id=] answers with the ids only: read the orders first.
        before = {order.order_id: order for order in await self.open_orders(symbol)}
        params = []
        if symbol is not None:
            params.append(("product_id", (await self.market(symbol)).venue_symbol))
        ids = await self._api.signed(endpoints.CANCEL_ALL, params)
        now = self._now()
        return [
            dataclasses.replace(
                before[str(order_id)],
                status=OrderStatus.CANCELED,
                updated_time=now,
                status_reason="canceled",
            )
            for order_id in ids or []
            if str(order_id) in before
        ]

    async def my_trades(
        self, symbol: Symbol | None, *, order_id: str = "", limit: int = 100
    ) -> list[Fill]:
        if symbol is None and not order_id:
            raise InvalidArgument("symbol", "coinbase lists fills per symbol or order; give one")
        params: list[tuple[str, str]] = []
        if order_id:
            params.append(("order_id", order_id))
        if symbol is not None:
            params.append(("product_id", (await self.market(symbol)).venue_symbol))
        rows = await self._api.paged(endpoints.FILLS, params, limit)
        markets = {m.venue_symbol: m for m in (await self.markets()).values()}
        return [
            parse.parse_fill(row, markets[row["product_id"]], "")
            for row in rows
            if row.get("product_id") in markets
        ]

    async def ledger(self, asset: str | None, limit: int) -> list[LedgerEntry]:
        if asset is None:
            raise InvalidArgument("asset", "coinbase keeps one ledger per asset; give the asset")
        accounts = await self._api.signed(endpoints.ACCOUNTS)
        account = next((a for a in accounts if str(a.get("currency")).upper() == asset), None)
        if account is None:
            return []
        rows = await self._api.paged(endpoints.LEDGER, [], limit, account=str(account["id"]))
        return [parse.parse_ledger_entry(row, asset) for row in rows]

    async def _cursor_page(
        self,
        endpoint: Endpoint,
        params: list[tuple[str, str]],
        page: PageRequest,
        **parts: str,
    ) -> tuple[list[Any], Mapping[str, str] | None]:
        """One page of a CB-AFTER list (newest first) within the page's time range."""
        params = [*params, ("limit", str(min(page.size, endpoints.MAX_PAGE_SIZE)))]
        if page.start is not None:
            params.append(("start_date", page.start.isoformat()))
        if page.end is not None:
            params.append(("end_date", page.end.isoformat()))
        if page.cursor:
            params.append(("after", page.cursor.get("after", "")))
        response = await self._api.signed_response(endpoint, params, None, **parts)
        rows: list[Any] = response.json()
        after = response.headers.get("CB-AFTER", "")
        full = len(rows) >= min(page.size, endpoints.MAX_PAGE_SIZE)
        return rows, ({"after": after} if full and after else None)

    async def trades_page(
        self, symbol: Symbol | None, order_id: str, page: PageRequest
    ) -> Page[Fill]:
        if symbol is None and not order_id:
            raise InvalidArgument("symbol", "coinbase lists fills per symbol or order; give one")
        params: list[tuple[str, str]] = []
        if order_id:
            params.append(("order_id", order_id))
        if symbol is not None:
            params.append(("product_id", (await self.market(symbol)).venue_symbol))
        rows, cursor = await self._cursor_page(endpoints.FILLS, params, page)
        markets = {m.venue_symbol: m for m in (await self.markets()).values()}
        fills = [
            parse.parse_fill(row, markets[row["product_id"]], "")
            for row in rows
            if row.get("product_id") in markets
        ]
        return Page([f for f in fills if page.covers(f.time)], cursor)

    async def ledger_page(self, asset: str | None, page: PageRequest) -> Page[LedgerEntry]:
        if asset is None:
            raise InvalidArgument("asset", "coinbase keeps one ledger per asset; give the asset")
        accounts = await self._api.signed(endpoints.ACCOUNTS)
        account = next((a for a in accounts if str(a.get("currency")).upper() == asset), None)
        if account is None:
            return Page([], None)
        rows, cursor = await self._cursor_page(
            endpoints.LEDGER, [], page, account=str(account["id"])
        )
        entries = [parse.parse_ledger_entry(row, asset) for row in rows]
        return Page([e for e in entries if page.covers(e.time)], cursor)

    # ---- streams (WebSocket feeds; see stream.py) ------------------------------------

    async def watch_quotes(self, symbol: Symbol) -> AsyncIterator[Quote | FeedInterrupted]:
        market, _ = await self._market(symbol)
        fetch = functools.partial(self.ticker, symbol)
        async for item in stream.watch_quotes(
            self._ws_url, market.venue_symbol, fetch, self.frame_stats, self._ws_idle_timeout
        ):
            yield item

    async def book_feed(self, symbol: Symbol) -> BookFeed:
        market, note = await self._market(symbol)
        return stream.CoinbaseBookFeed(
            self._ws_url,
            market.venue_symbol,
            self.frame_stats,
            note,
            self._ws_idle_timeout,
            authenticate=self._feed_auth if self.credentials_configured else None,
        )

    def _feed_auth(self) -> dict[str, str]:
        credentials = self._credentials
        return auth.feed_subscription_fields(
            credentials.api_key.reveal(),
            credentials.api_secret.reveal(),
            credentials.passphrase.reveal(),
            f"{self._clock_sync.now_ms() / 1000:.3f}",
        )

    def account_feed_error(self) -> TitanError | None:
        if not self.credentials_configured:
            return NotConfigured(
                "coinbase: the account streams need COINBASE_API_KEY, COINBASE_API_SECRET "
                "and COINBASE_PASSPHRASE",
                variable="COINBASE_API_KEY",
            )
        return None

    async def watch_account(
        self,
    ) -> AsyncIterator[AccountEvent | AccountFeedConnected | FeedInterrupted]:
        if not self._clock_sync.synced:
            await self._api.server_time()

        async def by_product() -> dict[str, Market]:
            return {m.venue_symbol: m for m in (await self.markets()).values()}

        async def fetch_order(order_id: str) -> Order:
            return await self.get_order(None, order_id=order_id)

        async def fetch_balances() -> BalanceUpdate:
            return BalanceUpdate(self.name, tuple(await self.balances()), self._now())

        async for item in stream.watch_account(
            self._ws_url,
            self._feed_auth,
            by_product,
            lambda venue_oid: self._client_ids.get(venue_oid, venue_oid),
            fetch_order,
            fetch_balances,
            self.frame_stats,
            self._ws_idle_timeout,
        ):
            yield item
