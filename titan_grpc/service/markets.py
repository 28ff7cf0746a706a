"""Markets: trading rules and the account's fees per venue."""

from __future__ import annotations

from typing import Any

from titan_grpc import convert
from titan_grpc.domain import Market
from titan_grpc.exchanges import ExchangeBackend
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.service.base import ServiceBase, unary


class MarketsRpcs(ServiceBase):
    @unary
    async def GetMarkets(
        self, request: pb.GetMarketsRequest, context: Any
    ) -> pb.GetMarketsResponse:
        backends = self._registry.resolve_many(request.exchanges)
        symbols = convert.symbols_from_proto(request.symbols) if request.symbols else []

        async def listed(backend: ExchangeBackend) -> list[Market]:
            markets = await backend.markets()
            if not symbols:
                return sorted(markets.values(), key=lambda m: m.symbol.canonical)
            # market() per symbol: venues with per-symbol fees learn them here.
            return [await backend.market(s) for s in symbols if s in markets]

        results, errors = await self._per_venue(backends, listed, context)
        return pb.GetMarketsResponse(
            markets=[
                convert.market_to_proto(market, backend.simulated)
                for backend, markets in results
                for market in markets
            ],
            errors=errors,
        )
