"""One venue's market data: ticker, order book, recent trades."""

from __future__ import annotations

from typing import Any

from titan_grpc import convert
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
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
    async def GetMarketData(
        self, request: pb.GetMarketDataRequest, context: Any
    ) -> pb.GetMarketDataResponse:
        market = self._market
        freshness = (
            market.freshness(convert.max_age_from_proto(request))
            if request.HasField("max_age")
            else market.default_freshness  # the usual call: two calls fewer
        )
        backend, symbol = self._resolved.get(
            (request.exchange, request.symbol)
        ) or await self._venue_and_symbol(request.exchange, request.symbol)
        # A hit needs no coroutine; a miss makes (or joins) the shared venue request.
        ticker = market.held_ticker(backend, symbol, freshness) or await market.fetched_ticker(
            backend, symbol, freshness
        )
        key = (backend.name, symbol)
        answered = self._ticker_answers.get(key)
        if answered is not None and answered[0] is ticker:
            response: pb.GetMarketDataResponse = answered[1]
            return response  # built once per ticker, shared by every caller
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
