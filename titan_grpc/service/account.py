"""The account: balances, fills and the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from titan_grpc import convert
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.service import pages
from titan_grpc.service.base import DEFAULT_HISTORY, MAX_HISTORY, ServiceBase, unary


class AccountRpcs(ServiceBase):
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
    async def ListTrades(
        self, request: pb.ListTradesRequest, context: Any
    ) -> pb.ListTradesResponse:
        backend = self._registry.resolve(request.exchange)
        symbol = convert.optional_symbol_from_proto(request.symbol)
        order_id = request.order_id.strip()
        if pages.wants_paging(request):
            page, digest = pages.page_request_from_proto(
                request, "trades", backend.name, symbol, order_id
            )
            if symbol is not None:
                await backend.market(symbol)
            found = await backend.trades_page(symbol, order_id, page)
            return pb.ListTradesResponse(
                exchange=backend.name,
                simulated=backend.simulated,
                trades=[convert.fill_to_proto(fill) for fill in found.items],
                next_page_token=pages.next_page_token("trades", digest, found.cursor),
            )
        limit = convert.bounded(
            request.limit, default=DEFAULT_HISTORY, maximum=MAX_HISTORY, field="limit"
        )
        if symbol is not None:
            await backend.market(symbol)
        order_id = convert.optional_order_id_from_proto(request.order_id)
        fills = await backend.my_trades(symbol, order_id=order_id, limit=limit)
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
        if pages.wants_paging(request):
            page, digest = pages.page_request_from_proto(request, "ledger", backend.name, asset)
            found = await backend.ledger_page(asset, page)
            return pb.ListLedgerEntriesResponse(
                exchange=backend.name,
                simulated=backend.simulated,
                entries=[convert.ledger_entry_to_proto(entry) for entry in found.items],
                next_page_token=pages.next_page_token("ledger", digest, found.cursor),
            )
        limit = convert.bounded(
            request.limit, default=DEFAULT_HISTORY, maximum=MAX_HISTORY, field="limit"
        )
        entries = await backend.ledger(asset, limit)
        return pb.ListLedgerEntriesResponse(
            exchange=backend.name,
            simulated=backend.simulated,
            entries=[convert.ledger_entry_to_proto(entry) for entry in entries],
        )
