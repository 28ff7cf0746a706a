"""One venue's market data: ticker, order book, recent trades."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from titan_grpc import convert
from titan_grpc.domain import Symbol, Ticker
from titan_grpc.exchanges import ExchangeBackend
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.market.state import Freshness
from titan_grpc.service.base import (
    DEFAULT_DEPTH,
    DEFAULT_TRADES,
    MAX_DEPTH,
    MAX_TRADES,
    ServiceBase,
    unary,
)


class MarketDataRpcs(ServiceBase):
    @unary
    def GetMarketData(
        self, request: pb.GetMarketDataRequest, context: Any
    ) -> pb.GetMarketDataResponse | Awaitable[pb.GetMarketDataResponse]:
        """Answers at once when the read path holds a ticker fresh enough (the usual call,
        with no coroutine of its own); otherwise returns the coroutine that asks the venue."""
        market = self._market
        freshness = (
            market.freshness(convert.max_age_from_proto(request))
            if request.HasField("max_age")
            else market.default_freshness  # the usual call: two calls fewer
        )
        resolved = self._resolved.get((request.exchange, request.symbol))
        if resolved is None:
            return self._first_market_data(request, freshness)
        backend, symbol = resolved
        ticker = market.held_ticker(backend, symbol, freshness)
        if ticker is None:
            return self._fetched_market_data(backend, symbol, freshness)
        return self._ticker_answer(backend.name, symbol, ticker)

    async def _first_market_data(
        self, request: pb.GetMarketDataRequest, freshness: Freshness
    ) -> pb.GetMarketDataResponse:
        """A market this process has not resolved yet: the venue's listing is checked first."""
        backend, symbol = await self._venue_and_symbol(request.exchange, request.symbol)
        ticker = await self._market.ticker(backend, symbol, freshness)
        return self._ticker_answer(backend.name, symbol, ticker)

    async def _fetched_market_data(
        self, backend: ExchangeBackend, symbol: Symbol, freshness: Freshness
    ) -> pb.GetMarketDataResponse:
        ticker = await self._market.fetched_ticker(backend, symbol, freshness)
        return self._ticker_answer(backend.name, symbol, ticker)

    def _ticker_answer(
        self, venue: str, symbol: Symbol, ticker: Ticker
    ) -> pb.GetMarketDataResponse:
        """The answer for ``ticker``, built once per ticker and shared by every caller."""
        key = (venue, symbol)
        answered = self._ticker_answers.get(key)
        if answered is not None and answered[0] is ticker:
            response: pb.GetMarketDataResponse = answered[1]
            return response
        response = pb.GetMarketDataResponse(ticker=convert.ticker_to_proto(ticker))
        self._ticker_answers[key] = (ticker, response)
        return response

    @unary
    async def GetOrderBook(
        self, request: pb.GetOrderBookRequest, context: Any
    ) -> pb.GetOrderBookResponse:
        depth = convert.bounded(
            request.depth, default=DEFAULT_DEPTH, maximum=MAX_DEPTH, field="depth"
        )
        freshness = self._market.freshness(convert.max_age_from_proto(request))
        backend, symbol = self._resolved.get(
            (request.exchange, request.symbol)
        ) or await self._venue_and_symbol(request.exchange, request.symbol)
        book = await self._market.order_book(backend, symbol, depth, freshness)
        return pb.GetOrderBookResponse(book=convert.book_to_proto(book))

    @unary
    async def GetRecentTrades(
        self, request: pb.GetRecentTradesRequest, context: Any
    ) -> pb.GetRecentTradesResponse:
        limit = convert.bounded(
            request.limit, default=DEFAULT_TRADES, maximum=MAX_TRADES, field="limit"
        )
        backend, symbol = self._resolved.get(
            (request.exchange, request.symbol)
        ) or await self._venue_and_symbol(request.exchange, request.symbol)
        trades = await self._market.recent_trades(
            backend, symbol, limit, self._market.freshness(None)
        )
        return convert.recent_trades_to_proto(trades)
