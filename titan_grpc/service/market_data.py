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
