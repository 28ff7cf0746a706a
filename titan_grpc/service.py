"""The gRPC servicer: parse and validate, call one domain operation, convert, return.

Error mapping and the per-RPC log line live in the ``unary``/``streaming`` decorators,
not in the methods.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc

from titan_grpc import convert
from titan_grpc.convert import dec
from titan_grpc.domain import OrderBook, OrderRequest, OrderType, Quote, Symbol, parse_decimal
from titan_grpc.errors import InvalidArgument, TitanError, UnknownSymbol
from titan_grpc.exchanges import ExchangeBackend, ExchangeRegistry
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.logs import new_request_id, request_id
from titan_grpc.market.aggregate import consolidate
from titan_grpc.market.health import HealthMonitor, VenueHealth
from titan_grpc.market.hub import Notice, NoticeKind, StreamHub
from titan_grpc.market.live_book import watch_book
from titan_grpc.market.portfolio import (
    MarketPrice,
    market_price,
    portfolio_symbols,
    value_portfolio,
)
from titan_grpc.market.pricing import VenueBook, arbitrage, venue_prices
from titan_grpc.market.venues import gather_venues
from titan_grpc.metrics import Metrics
from titan_grpc.status import to_grpc_status, venue_error_to_proto
from titan_grpc.trading.orders import OrderService
from titan_grpc.trading.router import plan_route

log = logging.getLogger("titan_grpc.rpc")

T = TypeVar("T")
Request = Any
Response = Any

DEFAULT_DEPTH, MAX_DEPTH = 20, 1000
DEFAULT_TRADES, MAX_TRADES = 50, 1000
DEFAULT_HISTORY, MAX_HISTORY = 100, 1000
ROUTING_DEPTH = 100


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    version: str
    real_mode: bool
    quote_aliases: tuple[str, ...] = ()
    venue_timeout_seconds: float = 10.0


def _log_rpc(name: str, code: grpc.StatusCode, started: float, extra: str = "") -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.info("rpc=%s code=%s duration_ms=%.1f%s", name, code.name, elapsed_ms, extra)


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], error: BaseException
) -> grpc.StatusCode:
    if isinstance(error, TitanError):
        status = to_grpc_status(error)
        trailing = (*status.trailing_metadata, ("x-request-id", request_id.get()))
        await context.abort(status.code, status.details, trailing)
    log.error("unexpected error", exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
    raise AssertionError("unreachable")  # pragma: no cover


def _code_of(error: BaseException) -> grpc.StatusCode:
    if isinstance(error, TitanError):
        return to_grpc_status(error).code
    return grpc.StatusCode.INTERNAL


def _begin(context: Any) -> None:
    """Give the call a request id (the caller's x-request-id if sane) and echo it back."""
    incoming = dict(context.invocation_metadata() or ()).get("x-request-id", "")
    rid = new_request_id(incoming if isinstance(incoming, str) else "")
    request_id.set(rid)
    context.set_trailing_metadata((("x-request-id", rid),))


def _finish(
    servicer: Any, name: str, code: grpc.StatusCode, started: float, extra: str = ""
) -> None:
    _log_rpc(name, code, started, extra)
    metrics: Metrics | None = getattr(servicer, "_metrics", None)
    if metrics is not None:
        metrics.observe_rpc(name, code.name, time.perf_counter() - started)


def unary(
    method: Callable[[Any, Request, Any], Awaitable[Response]],
) -> Callable[[Any, Request, Any], Awaitable[Response]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: Any) -> Response:
        started, code = time.perf_counter(), grpc.StatusCode.OK
        _begin(context)
        try:
            return await method(self, request, context)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as error:
            if _is_abort(error):
                raise
            code = _code_of(error)
            await _abort(context, error)
            raise
        finally:
            _finish(self, method.__name__, code, started)

    return wrapper


def streaming(
    method: Callable[[Any, Request, Any], AsyncIterator[Response]],
) -> Callable[[Any, Request, Any], AsyncIterator[Response]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: Any) -> AsyncIterator[Response]:
        started, code, sent = time.perf_counter(), grpc.StatusCode.OK, 0
        _begin(context)
        metrics: Metrics | None = getattr(self, "_metrics", None)
        if metrics is not None:
            metrics.active_streams.labels(method.__name__).inc()
        try:
            async for message in method(self, request, context):
                sent += 1
                yield message
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as error:
            if _is_abort(error):
                raise
            code = _code_of(error)
            await _abort(context, error)
            raise
        finally:
            if metrics is not None:
                metrics.active_streams.labels(method.__name__).dec()
            _finish(self, method.__name__, code, started, f" messages={sent}")

    return wrapper


def _is_abort(error: BaseException) -> bool:
    # grpc.aio raises AbortError from context.abort(); it must pass through untouched.
    return isinstance(error, grpc.aio.AbortError)


class ExchangeService(pb_grpc.ExchangeServiceServicer):
    def __init__(
        self,
        registry: ExchangeRegistry,
        orders: OrderService,
        monitor: HealthMonitor,
        info: GatewayInfo,
        shutdown: asyncio.Event,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._registry = registry
        # One upstream feed per (venue, symbol[, depth]) however many clients watch it.
        self._quote_hub: StreamHub[tuple[str, Symbol], Quote] = StreamHub(
            lambda key: registry.resolve(key[0]).watch_quotes(key[1]),
            on_notice=self._count_notice,
        )
        self._book_hub: StreamHub[tuple[str, Symbol, int], OrderBook] = StreamHub(
            lambda key: watch_book(registry.resolve(key[0]), key[1], key[2]),
            on_notice=self._count_notice,
        )
        # Per feed: the last quote's answer, shared by all its subscribers, and a counter.
        self._quote_messages: dict[tuple[str, Symbol], tuple[Quote, pb.StreamQuotesResponse]] = {}
        self._quote_sequences: dict[tuple[str, Symbol], int] = {}
        self._orders = orders
        self._monitor = monitor
        self._info = info
        self._shutdown = shutdown

    # ---- helpers -----------------------------------------------------------------

    def _venue_timeout(self, context: Any) -> float:
        remaining = context.time_remaining()
        budget = self._info.venue_timeout_seconds
        if remaining is not None and math.isfinite(remaining):
            budget = min(budget, max(remaining - 0.05, 0.01))
        return budget

    async def _per_venue(
        self,
        backends: Sequence[ExchangeBackend],
        call: Callable[[ExchangeBackend], Awaitable[T]],
        context: Any,
    ) -> tuple[list[tuple[ExchangeBackend, T]], list[pb.VenueError]]:
        """Call every venue concurrently, each under its own deadline; split results/errors."""
        results, failures = await gather_venues(backends, call, self._venue_timeout(context))
        errors: list[pb.VenueError] = []
        for backend, error in failures:
            if not isinstance(error, TitanError | TimeoutError):
                log.error("venue %s failed", backend.name, exc_info=error)
            errors.append(venue_error_to_proto(backend.name, error))
        return results, errors

    def _healthy(
        self, backends: Sequence[ExchangeBackend]
    ) -> tuple[list[ExchangeBackend], list[str]]:
        healthy = [b for b in backends if self._monitor.is_healthy(b.name)]
        skipped = [b.name for b in backends if not self._monitor.is_healthy(b.name)]
        return healthy, skipped

    async def _books(
        self, backends: Sequence[ExchangeBackend], symbol: Symbol, depth: int, context: Any
    ) -> tuple[list[VenueBook], list[pb.VenueError]]:
        async def fetch(backend: ExchangeBackend) -> VenueBook:
            market = await backend.market_for_data(symbol)
            book = await backend.order_book(symbol, depth)
            return VenueBook(
                backend.name,
                book.bids,
                book.asks,
                market.taker_fee_rate,
                market.step_size,
                market.min_quantity,
                market.min_notional,
                book.simulated,
            )

        results, errors = await self._per_venue(backends, fetch, context)
        return [book for _, book in results], errors

    def _count_notice(self, key: tuple[Any, ...], notice: Notice) -> None:
        if self._metrics is not None:
            self._metrics.feed_notices.labels(key[0], notice.kind.value).inc()

    def _count_subscriptions(
        self, pairs: Sequence[tuple[ExchangeBackend, Symbol]], step: int
    ) -> None:
        if self._metrics is not None:
            for backend, _ in pairs:
                self._metrics.stream_subscriptions.labels(backend.name).inc(step)

    async def _venue_and_symbol(self, exchange: str, symbol: str) -> tuple[ExchangeBackend, Symbol]:
        backend = self._registry.resolve(exchange)
        parsed = convert.symbol_from_proto(symbol)
        await backend.market_for_data(parsed)
        return backend, parsed

    # ---- status ------------------------------------------------------------------

    @unary
    async def GetStatus(self, request: pb.GetStatusRequest, context: Any) -> pb.GetStatusResponse:
        backends = self._registry.all()
        markets, _ = await self._per_venue(backends, lambda b: b.markets(), context)
        counts = {backend.name: len(found) for backend, found in markets}
        return pb.GetStatusResponse(
            mode=pb.MODE_REAL if self._info.real_mode else pb.MODE_SIMULATED,
            version=self._info.version,
            server_time=convert.timestamp(datetime.now(UTC)),
            venues=[
                _venue_status(b, counts.get(b.name, 0), self._monitor.health(b.name))
                for b in backends
            ],
            quote_aliases=list(self._info.quote_aliases),
        )

    @unary
    async def TestConnections(
        self, request: pb.TestConnectionsRequest, context: Any
    ) -> pb.TestConnectionsResponse:
        backends = self._registry.resolve_many(request.exchanges)
        results, errors = await self._per_venue(backends, lambda b: b.ping(), context)
        by_name = {backend.name: check for backend, check in results}
        error_by_name = {error.exchange: error for error in errors}
        return pb.TestConnectionsResponse(
            results=[
                pb.ConnectionResult(
                    exchange=b.name,
                    ok=b.name in by_name,
                    simulated=b.simulated,
                    latency=convert.duration(by_name[b.name].latency_seconds)
                    if b.name in by_name
                    else None,
                    venue_time=convert.timestamp(by_name[b.name].venue_time)
                    if b.name in by_name
                    else None,
                    error=error_by_name.get(b.name),
                )
                for b in backends
            ]
        )

    @unary
    async def TestAuth(self, request: pb.TestAuthRequest, context: Any) -> pb.TestAuthResponse:
        backends = self._registry.resolve_many(request.exchanges)
        results, errors = await self._per_venue(backends, lambda b: b.check_auth(), context)
        by_name = {backend.name: check for backend, check in results}
        error_by_name = {error.exchange: error for error in errors}
        return pb.TestAuthResponse(
            results=[
                pb.AuthResult(
                    exchange=b.name,
                    ok=b.name in by_name,
                    simulated=b.simulated,
                    permissions=list(by_name[b.name].permissions) if b.name in by_name else [],
                    error=error_by_name.get(b.name),
                )
                for b in backends
            ]
        )

    # ---- market data -------------------------------------------------------------

    @unary
    async def GetMarketData(
        self, request: pb.GetMarketDataRequest, context: Any
    ) -> pb.GetMarketDataResponse:
        backend, symbol = await self._venue_and_symbol(request.exchange, request.symbol)
        ticker = await backend.ticker(symbol)
        return pb.GetMarketDataResponse(ticker=convert.ticker_to_proto(ticker))

    @unary
    async def GetOrderBook(
        self, request: pb.GetOrderBookRequest, context: Any
    ) -> pb.GetOrderBookResponse:
        depth = convert.bounded(
            request.depth, default=DEFAULT_DEPTH, maximum=MAX_DEPTH, field="depth"
        )
        backend, symbol = await self._venue_and_symbol(request.exchange, request.symbol)
        book = await backend.order_book(symbol, depth)
        return pb.GetOrderBookResponse(book=convert.book_to_proto(book))

    @unary
    async def GetRecentTrades(
        self, request: pb.GetRecentTradesRequest, context: Any
    ) -> pb.GetRecentTradesResponse:
        limit = convert.bounded(
            request.limit, default=DEFAULT_TRADES, maximum=MAX_TRADES, field="limit"
        )
        backend, symbol = await self._venue_and_symbol(request.exchange, request.symbol)
        trades = await backend.recent_trades(symbol, limit)
        return convert.recent_trades_to_proto(trades)

    # ---- account -----------------------------------------------------------------

    @unary
    async def GetBalances(
        self, request: pb.GetBalancesRequest, context: Any
    ) -> pb.GetBalancesResponse:
        backends = self._registry.resolve_many(request.exchanges)
        results, errors = await self._per_venue(backends, lambda b: b.balances(), context)
        now = convert.timestamp(datetime.now(UTC))
        return pb.GetBalancesResponse(
            venues=[
                pb.VenueBalances(
                    exchange=backend.name,
                    simulated=backend.simulated,
                    balances=[convert.balance_to_proto(balance) for balance in balances],
                    time=now,
                )
                for backend, balances in results
            ],
            errors=errors,
        )

    @unary
    async def PlaceOrder(
        self, request: pb.PlaceOrderRequest, context: Any
    ) -> pb.PlaceOrderResponse:
        backend = self._registry.resolve(request.exchange)
        symbol = convert.symbol_from_proto(request.symbol)
        side = convert.side_from_proto(request.side)
        order_type = convert.order_type_from_proto(request.type)
        time_in_force = convert.time_in_force_from_proto(request.time_in_force, order_type)
        quantity = parse_decimal(request.quantity, "quantity")
        price = parse_decimal(request.price, "price", required=False)
        if order_type is OrderType.LIMIT and price is None:
            raise InvalidArgument("price", "is required for limit orders")
        if order_type is OrderType.MARKET:
            if price is not None:
                raise InvalidArgument("price", "must be empty for market orders")
            if request.post_only:
                raise InvalidArgument("post_only", "applies to limit orders only")
            if request.time_in_force == pb.TIME_IN_FORCE_GTC:
                raise InvalidArgument(
                    "time_in_force", "market orders cannot be GTC; use IOC or FOK"
                )
        client_order_id = convert.client_order_id_from_proto(request.client_order_id)
        assert quantity is not None
        await backend.market(symbol)
        order = await self._orders.place(
            backend,
            OrderRequest(
                symbol=symbol,
                side=side,
                type=order_type,
                quantity=quantity,
                price=price,
                time_in_force=time_in_force,
                client_order_id=client_order_id,
                post_only=request.post_only,
            ),
        )
        return pb.PlaceOrderResponse(order=convert.order_to_proto(order))

    @unary
    async def CancelOrder(
        self, request: pb.CancelOrderRequest, context: Any
    ) -> pb.CancelOrderResponse:
        backend = self._registry.resolve(request.exchange)
        symbol = convert.optional_symbol_from_proto(request.symbol)
        order_id, client_order_id = convert.order_reference_from_proto(
            request.order_id, request.client_order_id
        )
        order = await backend.cancel_order(
            symbol, order_id=order_id, client_order_id=client_order_id
        )
        await self._orders.observe(backend.name, order)
        return pb.CancelOrderResponse(order=convert.order_to_proto(order))

    @unary
    async def GetOrderStatus(
        self, request: pb.GetOrderStatusRequest, context: Any
    ) -> pb.GetOrderStatusResponse:
        backend = self._registry.resolve(request.exchange)
        symbol = convert.optional_symbol_from_proto(request.symbol)
        order_id, client_order_id = convert.order_reference_from_proto(
            request.order_id, request.client_order_id
        )
        order = await backend.get_order(symbol, order_id=order_id, client_order_id=client_order_id)
        await self._orders.observe(backend.name, order)
        return pb.GetOrderStatusResponse(order=convert.order_to_proto(order))

    @unary
    async def ListOrders(
        self, request: pb.ListOrdersRequest, context: Any
    ) -> pb.ListOrdersResponse:
        exchange = self._registry.resolve(request.exchange).name if request.exchange else None
        symbol = convert.optional_symbol_from_proto(request.symbol)
        states = convert.journal_states_from_proto(request.states)
        limit = convert.bounded(
            request.limit, default=DEFAULT_HISTORY, maximum=MAX_HISTORY, field="limit"
        )
        entries = await self._orders.journal.list_entries(
            exchange=exchange, symbol=symbol, states=states, limit=limit
        )
        return pb.ListOrdersResponse(orders=[convert.journaled_order_to_proto(e) for e in entries])

    @unary
    async def ListTrades(
        self, request: pb.ListTradesRequest, context: Any
    ) -> pb.ListTradesResponse:
        backend = self._registry.resolve(request.exchange)
        symbol = convert.optional_symbol_from_proto(request.symbol)
        limit = convert.bounded(
            request.limit, default=DEFAULT_HISTORY, maximum=MAX_HISTORY, field="limit"
        )
        if symbol is not None:
            await backend.market(symbol)
        fills = await backend.my_trades(symbol, order_id=request.order_id.strip(), limit=limit)
        return pb.ListTradesResponse(
            exchange=backend.name,
            simulated=backend.simulated,
            trades=[convert.fill_to_proto(fill) for fill in fills],
        )

    @unary
    async def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: Any
    ) -> pb.ListLedgerEntriesResponse:
        backend = self._registry.resolve(request.exchange)
        asset = convert.optional_asset_from_proto(request.asset, "asset")
        limit = convert.bounded(
            request.limit, default=DEFAULT_HISTORY, maximum=MAX_HISTORY, field="limit"
        )
        entries = await backend.ledger(asset, limit)
        return pb.ListLedgerEntriesResponse(
            exchange=backend.name,
            simulated=backend.simulated,
            entries=[convert.ledger_entry_to_proto(entry) for entry in entries],
        )

    # ---- multi-venue ---------------------------------------------------------------

    @unary
    async def GetAggregatedMarketData(
        self, request: pb.GetAggregatedMarketDataRequest, context: Any
    ) -> pb.GetAggregatedMarketDataResponse:
        symbol = convert.symbol_from_proto(request.symbol)
        backends, skipped = self._healthy(self._registry.resolve_many(request.exchanges))
        results, errors = await self._per_venue(backends, lambda b: b.ticker(symbol), context)
        tickers = [ticker for _, ticker in results]
        view = consolidate(tickers)
        return pb.GetAggregatedMarketDataResponse(
            symbol=symbol.canonical,
            tickers=[convert.ticker_to_proto(t) for t in tickers],
            errors=errors,
            best_bid=convert.best_level_to_proto(view.best_bid),
            best_ask=convert.best_level_to_proto(view.best_ask),
            mid=dec(view.mid),
            spread=dec(view.spread),
            spread_bps=dec(view.spread_bps),
            volume_weighted_last=dec(view.volume_weighted_last),
            total_volume_24h=dec(view.total_volume),
            skipped_exchanges=skipped,
        )

    @unary
    async def FindBestPrice(
        self, request: pb.FindBestPriceRequest, context: Any
    ) -> pb.FindBestPriceResponse:
        symbol = convert.symbol_from_proto(request.symbol)
        side = convert.side_from_proto(request.side)
        quantity = parse_decimal(request.quantity, "quantity", required=False)
        backends, skipped = self._healthy(self._registry.resolve_many(request.exchanges))
        books, errors = await self._books(backends, symbol, ROUTING_DEPTH, context)
        prices = venue_prices(books, side, quantity)
        complete = [p for p in prices if quantity is None or p.available_quantity >= quantity]
        return pb.FindBestPriceResponse(
            symbol=symbol.canonical,
            side=request.side,
            best=convert.venue_price_to_proto(complete[0]) if complete else None,
            quotes=[convert.venue_price_to_proto(p) for p in prices],
            arbitrage=[convert.opportunity_to_proto(o) for o in arbitrage(books)],
            errors=errors,
            skipped_exchanges=skipped,
        )

    @unary
    async def PlanRoute(self, request: pb.PlanRouteRequest, context: Any) -> pb.PlanRouteResponse:
        symbol = convert.symbol_from_proto(request.symbol)
        side = convert.side_from_proto(request.side)
        order_type = convert.order_type_from_proto(request.type)
        quantity = parse_decimal(request.quantity, "quantity")
        limit = parse_decimal(request.price, "price", required=False)
        if order_type is OrderType.LIMIT and limit is None:
            raise InvalidArgument("price", "is required for limit orders")
        if order_type is OrderType.MARKET and limit is not None:
            raise InvalidArgument("price", "must be empty for market orders")
        assert quantity is not None
        backends, skipped = self._healthy(self._registry.resolve_many(request.exchanges))
        books, errors = await self._books(backends, symbol, ROUTING_DEPTH, context)
        answer = convert.route_plan_to_proto(symbol, plan_route(books, side, quantity, limit))
        answer.errors.extend(errors)
        answer.skipped_exchanges.extend(skipped)
        return answer

    @unary
    async def GetPortfolioValue(
        self, request: pb.GetPortfolioValueRequest, context: Any
    ) -> pb.GetPortfolioValueResponse:
        quote = convert.optional_asset_from_proto(request.quote_asset, "quote_asset") or "USDT"
        backends = self._registry.resolve_many(request.exchanges)
        held, errors = await self._per_venue(backends, lambda b: b.balances(), context)
        balances = {backend.name: found for backend, found in held}
        assets = {balance.asset for found in balances.values() for balance in found}
        wanted = portfolio_symbols(assets, quote)

        async def prices_on(backend: ExchangeBackend) -> list[MarketPrice]:
            listed = await backend.markets()
            symbols = [symbol for symbol in wanted if symbol in listed]
            tickers = await asyncio.gather(*(backend.ticker(s) for s in symbols))
            return [p for t in tickers if (p := market_price(t)) is not None]

        priced, price_errors = await self._per_venue(backends, prices_on, context)
        valuation = value_portfolio(balances, [p for _, found in priced for p in found], quote)
        answer = convert.valuation_to_proto(valuation, {b.name: b.simulated for b in backends})
        answer.errors.extend(errors + price_errors)
        return answer

    # ---- streams -----------------------------------------------------------------

    @streaming
    async def StreamQuotes(
        self, request: pb.StreamQuotesRequest, context: Any
    ) -> AsyncIterator[pb.StreamQuotesResponse]:
        symbols = convert.symbols_from_proto(request.symbols)
        backends = self._registry.resolve_many(request.exchanges)
        explicit = bool(request.exchanges)
        pairs: list[tuple[ExchangeBackend, Symbol]] = []
        for backend in backends:
            for index, symbol in enumerate(symbols):
                try:
                    await backend.market_for_data(symbol)
                except UnknownSymbol:
                    if explicit:
                        raise UnknownSymbol(
                            f"{backend.name} does not list {symbol.canonical} (symbols[{index}])",
                            exchange=backend.name,
                        ) from None
                    continue
                pairs.append((backend, symbol))
        if not pairs:
            raise InvalidArgument("symbols", "none of the symbols is listed on any exchange")
        subscription = self._quote_hub.subscribe(*((b.name, s) for b, s in pairs))
        self._count_subscriptions(pairs, +1)
        if self._shutdown.is_set():  # opened while the server was stopping
            subscription.end()
        try:
            async for event in subscription:
                venue, symbol = event.key
                if event.notice is not None:
                    yield pb.StreamQuotesResponse(notice=_notice(event.notice, venue, symbol))
                elif event.item is not None:
                    yield self._quote_message(event.key, event.item)
        finally:
            subscription.close()
            self._count_subscriptions(pairs, -1)
        if self._shutdown.is_set():
            yield pb.StreamQuotesResponse(notice=_shutdown_notice())

    def _quote_message(self, key: tuple[str, Symbol], quote: Quote) -> pb.StreamQuotesResponse:
        """The answer for ``quote``, built once and shared by every subscriber it reaches.

        Its sequence numbers the feed's quotes as the gateway sends them, so a subscriber
        that reads slower than quotes come (and was conflated) sees the jump."""
        cached = self._quote_messages.get(key)
        if cached is not None and cached[0] is quote:
            return cached[1]
        sequence = self._quote_sequences.get(key, 0) + 1
        message = pb.StreamQuotesResponse(quote=convert.quote_to_proto(quote, sequence))
        self._quote_sequences[key] = sequence
        self._quote_messages[key] = (quote, message)
        return message

    def end_streams(self) -> None:
        """End every open stream (server shutdown): each sends SHUTDOWN and finishes."""
        self._quote_hub.end_all()
        self._book_hub.end_all()

    @streaming
    async def StreamOrderBook(
        self, request: pb.StreamOrderBookRequest, context: Any
    ) -> AsyncIterator[pb.StreamOrderBookResponse]:
        depth = convert.bounded(
            request.depth, default=DEFAULT_DEPTH, maximum=MAX_DEPTH, field="depth"
        )
        backend, symbol = await self._venue_and_symbol(request.exchange, request.symbol)
        subscription = self._book_hub.subscribe((backend.name, symbol, depth))
        self._count_subscriptions([(backend, symbol)], +1)
        if self._shutdown.is_set():  # opened while the server was stopping
            subscription.end()
        try:
            async for event in subscription:
                if event.notice is not None:
                    notice = _notice(event.notice, backend.name, symbol)
                    yield pb.StreamOrderBookResponse(notice=notice)
                elif event.item is not None:
                    yield pb.StreamOrderBookResponse(book=convert.book_to_proto(event.item))
        finally:
            subscription.close()
            self._count_subscriptions([(backend, symbol)], -1)
        if self._shutdown.is_set():
            yield pb.StreamOrderBookResponse(notice=_shutdown_notice())


def _venue_status(
    backend: ExchangeBackend, market_count: int, health: VenueHealth
) -> pb.VenueStatus:
    return pb.VenueStatus(
        exchange=backend.name,
        simulated=backend.simulated,
        credentials_configured=backend.credentials_configured,
        testnet=backend.testnet,
        market_count=market_count,
        healthy=health.healthy,
        latency=convert.duration(health.latency_seconds)
        if health.latency_seconds is not None
        else None,
        last_error=health.last_error,
        consecutive_failures=health.consecutive_failures,
        last_check_time=convert.timestamp(health.last_check),
    )


_NOTICE_KINDS = {
    NoticeKind.GAP: pb.STREAM_NOTICE_KIND_GAP,
    NoticeKind.RECOVERED: pb.STREAM_NOTICE_KIND_RECOVERED,
}


def _notice(notice: Notice, exchange: str, symbol: Symbol) -> pb.StreamNotice:
    return pb.StreamNotice(
        kind=_NOTICE_KINDS[notice.kind],
        exchange=exchange,
        symbol=symbol.canonical,
        message=notice.message,
    )


def _shutdown_notice() -> pb.StreamNotice:
    return pb.StreamNotice(
        kind=pb.STREAM_NOTICE_KIND_SHUTDOWN, message="server shutting down; reconnect"
    )


__all__ = ["ExchangeService", "GatewayInfo", "dec"]
