"""Across venues: aggregation, best price, routing, portfolio value."""

from __future__ import annotations

import asyncio
from typing import Any

from titan_grpc import answers, convert
from titan_grpc.convert import dec
from titan_grpc.domain import OrderType, parse_decimal
from titan_grpc.errors import InvalidArgument
from titan_grpc.exchanges import ExchangeBackend
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.market.aggregate import consolidate
from titan_grpc.market.portfolio import (
    MarketPrice,
    market_price,
    portfolio_symbols,
    value_portfolio,
)
from titan_grpc.market.pricing import arbitrage, venue_prices
from titan_grpc.service.base import ROUTING_DEPTH, ServiceBase, unary
from titan_grpc.trading.router import plan_route


class MultiVenueRpcs(ServiceBase):
    @unary
    async def GetAggregatedMarketData(
        self, request: pb.GetAggregatedMarketDataRequest, context: Any
    ) -> pb.GetAggregatedMarketDataResponse:
        symbol = convert.symbol_from_proto(request.symbol)
        freshness = self._market.freshness(convert.max_age_from_proto(request))
        backends, skipped = self._healthy(self._registry.resolve_many(request.exchanges))
        results, errors = await self._per_venue(
            backends, lambda b: self._market.ticker(b, symbol, freshness), context
        )
        tickers = [ticker for _, ticker in results]
        view = consolidate(tickers)
        return pb.GetAggregatedMarketDataResponse(
            symbol=symbol.canonical,
            tickers=[convert.ticker_to_proto(t) for t in tickers],
            errors=errors,
            best_bid=answers.best_level_to_proto(view.best_bid),
            best_ask=answers.best_level_to_proto(view.best_ask),
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
        freshness = self._market.freshness(convert.max_age_from_proto(request))
        backends, skipped = self._healthy(self._registry.resolve_many(request.exchanges))
        books, errors = await self._books(backends, symbol, ROUTING_DEPTH, freshness, context)
        prices = venue_prices(books, side, quantity)
        complete = [p for p in prices if quantity is None or p.available_quantity >= quantity]
        return pb.FindBestPriceResponse(
            symbol=symbol.canonical,
            side=request.side,
            best=answers.venue_price_to_proto(complete[0]) if complete else None,
            quotes=[answers.venue_price_to_proto(p) for p in prices],
            arbitrage=[answers.opportunity_to_proto(o) for o in arbitrage(books)],
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
        freshness = self._market.freshness(convert.max_age_from_proto(request))
        backends, skipped = self._healthy(self._registry.resolve_many(request.exchanges))
        books, errors = await self._books(backends, symbol, ROUTING_DEPTH, freshness, context)
        answer = answers.route_plan_to_proto(symbol, plan_route(books, side, quantity, limit))
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
            freshness = self._market.freshness(None)
            tickers = await asyncio.gather(
                *(self._market.ticker(backend, s, freshness) for s in symbols)
            )
            return [p for t in tickers if (p := market_price(t)) is not None]

        priced, price_errors = await self._per_venue(backends, prices_on, context)
        valuation = value_portfolio(balances, [p for _, found in priced for p in found], quote)
        answer = answers.valuation_to_proto(valuation, {b.name: b.simulated for b in backends})
        answer.errors.extend(errors + price_errors)
        return answer
