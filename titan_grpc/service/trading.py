"""Orders: place, cancel, query, and the journal's list."""

from __future__ import annotations

from typing import Any

from titan_grpc import convert
from titan_grpc.domain import OrderRequest, OrderType, parse_decimal
from titan_grpc.errors import InvalidArgument
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.service.base import DEFAULT_HISTORY, MAX_HISTORY, ServiceBase, unary


class TradingRpcs(ServiceBase):
    @unary
    async def PlaceOrder(
        self, request: pb.PlaceOrderRequest, context: Any
    ) -> pb.PlaceOrderResponse:
        backend = self._registry.resolve(request.exchange)
        self._refuse_if_suspect(backend)
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
                convert.cancel_all_to_proto(result, backend.simulated)
                for backend, result in results
            ],
            errors=errors,
        )
