"""Shared parts of the gRPC servicer: the error-mapping decorators and the state and
helpers every RPC family uses.

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
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from titan_grpc import convert, logs
from titan_grpc.domain import OrderBook, Quote, Symbol, Ticker
from titan_grpc.errors import ExchangeUnavailable, Inadmissible, TitanError
from titan_grpc.exchanges import ExchangeBackend, ExchangeRegistry
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.logs import (
    REQUEST_ID_KEY,
    caller_request_id,
    current_call,
    new_request_id,
    request_id,
    request_id_in,
)
from titan_grpc.market.account import AccountFeeds
from titan_grpc.market.health import HealthMonitor
from titan_grpc.market.hub import Notice, StreamHub
from titan_grpc.market.live_book import watch_book
from titan_grpc.market.pricing import VenueBook
from titan_grpc.market.state import Freshness, MarketState, ReadPolicy
from titan_grpc.market.venues import gather_venues
from titan_grpc.metrics import Metrics
from titan_grpc.status import to_grpc_status, venue_error_to_proto
from titan_grpc.trading.orders import OrderService

log = logging.getLogger("titan_grpc.rpc")

T = TypeVar("T")
Request = Any
Response = Any

DEFAULT_DEPTH, MAX_DEPTH = 20, 1000
DEFAULT_TRADES, MAX_TRADES = 50, 1000
DEFAULT_HISTORY, MAX_HISTORY = 100, 1000
ROUTING_DEPTH = 100
MAX_RESOLVED = 10_000  # remembered (exchange, symbol) request strings
DEADLINE_MARGIN_SECONDS = 0.15


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    version: str
    real_mode: bool
    quote_aliases: tuple[str, ...] = ()
    venue_timeout_seconds: float = 10.0
    read_policy: ReadPolicy = field(default_factory=ReadPolicy)
    portfolio_interval_seconds: float = 1.0  # StreamPortfolioValue: at most one per interval


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], error: BaseException
) -> grpc.StatusCode:
    if isinstance(error, TitanError):
        status = to_grpc_status(error)
        trailing = (*status.trailing_metadata, (REQUEST_ID_KEY, request_id()))
        await context.abort(status.code, status.details, trailing)
    log.error("unexpected error", exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
    raise AssertionError("unreachable")  # pragma: no cover


def _code_of(error: BaseException) -> grpc.StatusCode:
    if isinstance(error, TitanError):
        return to_grpc_status(error).code
    return grpc.StatusCode.INTERNAL


def _begin(context: Any, name: str) -> str:
    """Give the call a request id (the caller's x-request-id if sane) and echo it back."""
    incoming = caller_request_id.get()
    if incoming is None:  # not read by the gRPC server's method lookup (service/handlers.py)
        incoming = request_id_in(context.invocation_metadata() or ())
    rid = new_request_id(incoming)
    current_call.set((rid, name))
    context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))
    return rid


def _finish(
    servicer: Any, rid: str, name: str, code: grpc.StatusCode, started: float, extra: str = ""
) -> None:
    """The call's request-log line and RPC metrics: recorded here, written and tallied in
    batches (logs.AccessLog, Metrics.observe_rpc) so that each call pays one append."""
    ended = time.perf_counter()
    seconds = ended - started
    code_name = "OK" if code is _OK else code.name  # Enum.name is a Python-level property
    access = logs.access_log
    if access is not None:  # the server's own logging: batched lines, same text
        access.record(ended, rid, name, code_name, seconds, extra)
    elif log.isEnabledFor(logging.INFO):
        log.info("rpc=%s code=%s duration_ms=%.1f%s", name, code_name, seconds * 1000, extra)
    metrics: Metrics | None = servicer._metrics
    if metrics is not None:
        metrics.observe_rpc(name, code_name, seconds)


_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED


def unary(
    method: Callable[[Any, Request, Any], Awaitable[Response]],
) -> Callable[[Any, Request, Any], Awaitable[Response]]:
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: Any) -> Response:
        started, code = time.perf_counter(), _OK
        rid = _begin(context, name)
        try:
            if isinstance(request, Inadmissible):  # refused at the transport's edge
                raise request.error
            return await method(self, request, context)
        except asyncio.CancelledError:
            code = _CANCELLED
            raise
        except Exception as error:
            if _is_abort(error):
                raise
            code = _code_of(error)
            await _abort(context, error)
            raise
        finally:
            _finish(self, rid, name, code, started)

    return wrapper


def streaming(
    method: Callable[[Any, Request, Any], AsyncIterator[Response]],
) -> Callable[[Any, Request, Any], AsyncIterator[Response]]:
    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: Any) -> AsyncIterator[Response]:
        started, code, sent = time.perf_counter(), _OK, 0
        rid = _begin(context, method.__name__)
        metrics: Metrics | None = getattr(self, "_metrics", None)
        if metrics is not None:
            metrics.active_streams.labels(method.__name__).inc()
        try:
            if isinstance(request, Inadmissible):  # refused at the transport's edge
                raise request.error
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
            _finish(self, rid, method.__name__, code, started, f" messages={sent}")

    return wrapper


def _is_abort(error: BaseException) -> bool:
    # grpc.aio raises AbortError from context.abort(); it must pass through untouched.
    return isinstance(error, grpc.aio.AbortError)


class ServiceBase:
    """State shared by every RPC family, built once by the composition root."""

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
        # Every market-data read goes through the read path (market/state.py).
        self._market = MarketState(
            self._quote_hub,
            self._book_hub,
            info.read_policy,
            watch=monitor,
            observe=metrics.observe_read if metrics is not None else None,
        )
        self._resolved: dict[tuple[str, str], tuple[ExchangeBackend, Symbol]] = {}
        # Per market: the last ticker's answer, built once per ticker and shared.
        self._ticker_answers: dict[tuple[str, Symbol], tuple[Ticker, Any]] = {}
        self._orders = orders
        # One private feed per venue account (market/account.py); the journal learns
        # from it before subscribers hear of a change.
        self._accounts = AccountFeeds(
            registry, orders.learn, on_notice=lambda venue, n: self._count_notice((venue,), n)
        )
        self._last_update_message: tuple[object, pb.StreamOrderUpdatesResponse] | None = None
        self._monitor = monitor
        self._info = info
        self._shutdown = shutdown

    async def run_upkeep(self) -> None:
        """Background upkeep of the read path (drops idle promoted feeds); closes the
        private feeds when cancelled (server stop)."""
        try:
            await self._resume_account_feeds()
            await self._market.run()
        finally:
            await self._accounts.close()

    async def _resume_account_feeds(self) -> None:
        """Open the private feed of every venue where the journal has open or unresolved
        orders: their fills reach the journal even before anyone listens."""
        entries = await self._orders.journal.needing_reconciliation()
        for venue in sorted({entry.exchange for entry in entries}):
            if venue in self._registry.names:
                backend = self._registry.resolve(venue)
                if backend.account_feed_error() is None:
                    self._accounts.keep_open(venue)

    # ---- helpers -----------------------------------------------------------------

    def _venue_timeout(self, context: Any) -> float:
        remaining = context.time_remaining()
        budget = self._info.venue_timeout_seconds
        if remaining is not None and math.isfinite(remaining):
            # Leave the answer time to get back before the caller's deadline, under load too.
            budget = min(budget, max(remaining - DEADLINE_MARGIN_SECONDS, 0.01))
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

    def _refuse_if_suspect(self, backend: ExchangeBackend) -> None:
        """Fail fast, before anything is journaled or sent, while a request to the venue
        has just timed out and a probe has not had an answer yet."""
        if self._monitor.is_suspect(backend.name):
            raise ExchangeUnavailable(
                f"{backend.name}: not answering (a request timed out); probing until it "
                "answers again; nothing was sent",
                exchange=backend.name,
            )

    def _healthy(
        self, backends: Sequence[ExchangeBackend]
    ) -> tuple[list[ExchangeBackend], list[str]]:
        healthy = [b for b in backends if self._monitor.is_healthy(b.name)]
        skipped = [b.name for b in backends if not self._monitor.is_healthy(b.name)]
        return healthy, skipped

    async def _books(
        self,
        backends: Sequence[ExchangeBackend],
        symbol: Symbol,
        depth: int,
        freshness: Freshness,
        context: Any,
    ) -> tuple[list[VenueBook], list[pb.VenueError]]:
        async def fetch(backend: ExchangeBackend) -> VenueBook:
            market = await backend.market_for_data(symbol)
            book = await self._market.order_book(backend, symbol, depth, freshness)
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
        """The venue and market a request names, checked against the venue's listing.
        Callers look in ``self._resolved`` first: a hit costs no coroutine."""
        resolved = self._resolved.get((exchange, symbol))
        if resolved is not None:
            return resolved
        backend = self._registry.resolve(exchange)
        parsed = convert.symbol_from_proto(symbol)
        await backend.market_for_data(parsed)
        # Remembered once the venue lists it (the adapter still answers UnknownSymbol if
        # the market is delisted later); bounded, as callers choose the strings.
        if len(self._resolved) >= MAX_RESOLVED:
            self._resolved.clear()
        self._resolved[(exchange, symbol)] = (backend, parsed)
        return backend, parsed
