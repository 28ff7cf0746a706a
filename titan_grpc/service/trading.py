"""Orders: place, cancel, query, and the journal's list."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from titan_grpc import answers, convert
from titan_grpc.domain import ZERO, OrderRequest, OrderType, Symbol, parse_decimal
from titan_grpc.errors import InvalidArgument
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.paging import PageRequest, cursor_int
from titan_grpc.service import pages
from titan_grpc.service.base import DEFAULT_HISTORY, MAX_HISTORY, ServiceBase, unary
from titan_grpc.stores import JournalStore
from titan_grpc.trading.journal import JournalEntry, JournalState


def _order_request_from_proto(request: pb.PlaceOrderRequest) -> OrderRequest:
    """The whole PlaceOrder request as one domain value, every field checked."""
    symbol = convert.symbol_from_proto(request.symbol)
    side = convert.side_from_proto(request.side)
    order_type = convert.order_type_from_proto(request.type, allow_stops=True)
    time_in_force = convert.time_in_force_from_proto(request.time_in_force, order_type)
    price = parse_decimal(request.price, "price", required=False)
    stop_price = parse_decimal(request.stop_price, "stop_price", required=False)
    quote_quantity = parse_decimal(request.quote_quantity, "quote_quantity", required=False)
    if quote_quantity is not None:
        if request.quantity.strip():
            raise InvalidArgument("quote_quantity", "is exclusive with quantity; give one")
        if order_type is not OrderType.MARKET:
            raise InvalidArgument("quote_quantity", "applies to ORDER_TYPE_MARKET orders only")
        quantity = ZERO
    else:
        parsed = parse_decimal(request.quantity, "quantity")
        assert parsed is not None
        quantity = parsed
    if order_type.has_limit_price and price is None:
        raise InvalidArgument("price", f"is required for {order_type.value} orders")
    if not order_type.has_limit_price:
        if price is not None:
            raise InvalidArgument("price", f"must be empty for {order_type.value} orders")
        if request.time_in_force == pb.TIME_IN_FORCE_GTC:
            raise InvalidArgument("time_in_force", "market orders cannot be GTC; use IOC or FOK")
    if request.post_only and order_type is not OrderType.LIMIT:
        raise InvalidArgument("post_only", "applies to limit orders only")
    if order_type.is_stop and stop_price is None:
        raise InvalidArgument("stop_price", f"is required for {order_type.value} orders")
    if not order_type.is_stop and stop_price is not None:
        raise InvalidArgument("stop_price", "applies to stop orders only")
    return OrderRequest(
        symbol=symbol,
        side=side,
        type=order_type,
        quantity=quantity,
        price=price,
        time_in_force=time_in_force,
        client_order_id=convert.client_order_id_from_proto(request.client_order_id),
        post_only=request.post_only,
        quote_quantity=quote_quantity,
        stop_price=stop_price,
    )


async def _journal_page(
    journal: JournalStore,
    exchange: str | None,
    symbol: Symbol | None,
    states: tuple[JournalState, ...],
    page: PageRequest,
) -> tuple[list[JournalEntry], dict[str, str] | None]:
    """A page of the journal, newest first, as of the first page's time (orders written
    since then do not shift later pages); the cursor is that time and an offset."""
    if page.cursor:
        offset = cursor_int(page.cursor, "offset")
        try:
            as_of = datetime.fromisoformat(page.cursor.get("as_of", ""))
        except ValueError:
            raise InvalidArgument("page_token", "is not a page token this server issued") from None
    else:
        offset, as_of = 0, datetime.now(UTC)
    wanted = offset + page.size + 1
    fetch = wanted
    while True:
        entries = await journal.list_entries(
            exchange=exchange, symbol=symbol, states=states, limit=fetch
        )
        kept = [e for e in entries if e.created_at <= as_of and page.covers(e.created_at)]
        if len(kept) >= wanted or len(entries) < fetch:
            break
        fetch *= 2
    more = len(kept) > offset + page.size
    cursor = {"as_of": as_of.isoformat(), "offset": str(offset + page.size)} if more else None
    return kept[offset : offset + page.size], cursor


class TradingRpcs(ServiceBase):
    @unary
    async def PlaceOrder(
        self, request: pb.PlaceOrderRequest, context: Any
    ) -> pb.PlaceOrderResponse:
        backend = self._registry.resolve(request.exchange)
        self._refuse_if_suspect(backend)
        order_request = _order_request_from_proto(request)
        await backend.market(order_request.symbol)
        order = replace(await self._orders.place(backend, order_request), placed_by_gateway=True)
        if order.status.is_open and backend.account_feed_error() is None:
            self._accounts.keep_open(backend.name)  # the journal follows it from the feed
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
        order = await self._orders.cancel(
            backend, symbol, order_id=order_id, client_order_id=client_order_id
        )
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
        # A finished order the live private feed reported: no venue request.
        known = self._accounts.known_order(backend.name, order_id, client_order_id)
        if known is not None and (symbol is None or known.symbol == symbol):
            return pb.GetOrderStatusResponse(order=convert.order_to_proto(known))
        order = await backend.get_order(symbol, order_id=order_id, client_order_id=client_order_id)
        order = await self._orders.observed(backend.name, order)
        return pb.GetOrderStatusResponse(order=convert.order_to_proto(order))

    @unary
    async def ListOrders(
        self, request: pb.ListOrdersRequest, context: Any
    ) -> pb.ListOrdersResponse:
        exchange = self._registry.resolve(request.exchange).name if request.exchange else None
        symbol = convert.optional_symbol_from_proto(request.symbol)
        states = convert.journal_states_from_proto(request.states)
        if pages.wants_paging(request):
            page, digest = pages.page_request_from_proto(
                request, "orders", exchange, symbol, [state.value for state in states]
            )
            entries, cursor = await _journal_page(
                self._orders.journal, exchange, symbol, states, page
            )
            return pb.ListOrdersResponse(
                orders=[convert.journaled_order_to_proto(e) for e in entries],
                next_page_token=pages.next_page_token("orders", digest, cursor),
            )
        limit = convert.bounded(
            request.limit, default=DEFAULT_HISTORY, maximum=MAX_HISTORY, field="limit"
        )
        entries = await self._orders.journal.list_entries(
            exchange=exchange, symbol=symbol, states=states, limit=limit
        )
        return pb.ListOrdersResponse(orders=[convert.journaled_order_to_proto(e) for e in entries])

    @unary
    async def ListOpenOrders(
        self, request: pb.ListOpenOrdersRequest, context: Any
    ) -> pb.ListOpenOrdersResponse:
        backends = self._registry.resolve_many(request.exchanges)
        symbol = convert.optional_symbol_from_proto(request.symbol)
        results, errors = await self._per_venue(
            backends, lambda b: self._orders.open_orders(b, symbol), context
        )
        return pb.ListOpenOrdersResponse(
            orders=[convert.order_to_proto(order) for _, orders in results for order in orders],
            errors=errors,
        )

    @unary
    async def CancelAllOrders(
        self, request: pb.CancelAllOrdersRequest, context: Any
    ) -> pb.CancelAllOrdersResponse:
        backends = self._registry.resolve_many(request.exchanges)
        symbol = convert.optional_symbol_from_proto(request.symbol)
        results, errors = await self._per_venue(
            backends, lambda b: self._orders.cancel_all(b, symbol), context
        )
        return pb.CancelAllOrdersResponse(
            results=[
                answers.cancel_all_to_proto(result, backend.simulated)
                for backend, result in results
            ],
            errors=errors,
        )
