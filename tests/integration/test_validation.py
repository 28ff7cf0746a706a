"""Every kind of bad input gets INVALID_ARGUMENT naming the field (never UNKNOWN/INTERNAL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from tests.helpers import bad_request_fields, expect_error
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc


def limit_order(**changes: Any) -> pb.PlaceOrderRequest:
    fields: dict[str, Any] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "side": pb.SIDE_BUY,
        "type": pb.ORDER_TYPE_LIMIT,
        "quantity": "0.01",
        "price": "30000",
    }
    fields.update(changes)
    return pb.PlaceOrderRequest(**fields)


Call = Callable[[pb_grpc.ExchangeServiceStub], Any]

CASES: list[tuple[str, Call, str]] = [
    # symbols
    (
        "empty symbol",
        lambda s: s.GetMarketData(pb.GetMarketDataRequest(exchange="binance")),
        "symbol",
    ),
    (
        "garbage symbol",
        lambda s: s.GetMarketData(pb.GetMarketDataRequest(symbol="$$$", exchange="binance")),
        "symbol",
    ),
    (
        "unlisted symbol",
        lambda s: s.GetOrderBook(pb.GetOrderBookRequest(symbol="DOGE-USDT", exchange="binance")),
        "symbol",
    ),
    (
        "ambiguous concatenated symbol",
        lambda s: s.GetMarketData(pb.GetMarketDataRequest(symbol="ABCDEF", exchange="binance")),
        "symbol",
    ),
    # venues
    (
        "missing exchange",
        lambda s: s.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT")),
        "exchange",
    ),
    (
        "unknown exchange",
        lambda s: s.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="ftx")),
        "exchange",
    ),
    (
        "unknown exchange in a list",
        lambda s: s.GetBalances(pb.GetBalancesRequest(exchanges=["binance", "mtgox"])),
        "exchanges[1]",
    ),
    # decimals
    ("abc quantity", lambda s: s.PlaceOrder(limit_order(quantity="abc")), "quantity"),
    ("NaN quantity", lambda s: s.PlaceOrder(limit_order(quantity="NaN")), "quantity"),
    ("negative quantity", lambda s: s.PlaceOrder(limit_order(quantity="-1")), "quantity"),
    ("huge exponent", lambda s: s.PlaceOrder(limit_order(quantity="1e400")), "quantity"),
    ("empty quantity", lambda s: s.PlaceOrder(limit_order(quantity="")), "quantity"),
    ("zero quantity", lambda s: s.PlaceOrder(limit_order(quantity="0")), "quantity"),
    ("infinite price", lambda s: s.PlaceOrder(limit_order(price="inf")), "price"),
    ("missing limit price", lambda s: s.PlaceOrder(limit_order(price="")), "price"),
    (
        "price on a market order",
        lambda s: s.PlaceOrder(limit_order(type=pb.ORDER_TYPE_MARKET)),
        "price",
    ),
    # enums
    ("missing side", lambda s: s.PlaceOrder(limit_order(side=pb.SIDE_UNSPECIFIED)), "side"),
    ("unknown side value", lambda s: s.PlaceOrder(limit_order(side=9)), "side"),
    ("missing type", lambda s: s.PlaceOrder(limit_order(type=pb.ORDER_TYPE_UNSPECIFIED)), "type"),
    (
        "unknown time in force",
        lambda s: s.PlaceOrder(limit_order(time_in_force=42)),
        "time_in_force",
    ),
    (
        "GTC market order",
        lambda s: s.PlaceOrder(
            limit_order(type=pb.ORDER_TYPE_MARKET, price="", time_in_force=pb.TIME_IN_FORCE_GTC)
        ),
        "time_in_force",
    ),
    (
        "post-only market order",
        lambda s: s.PlaceOrder(limit_order(type=pb.ORDER_TYPE_MARKET, price="", post_only=True)),
        "post_only",
    ),
    # ids
    (
        "bad client order id",
        lambda s: s.PlaceOrder(limit_order(client_order_id="has space")),
        "client_order_id",
    ),
    (
        "over-long client order id",
        lambda s: s.PlaceOrder(limit_order(client_order_id="x" * 37)),
        "client_order_id",
    ),
    (
        "cancel without ids",
        lambda s: s.CancelOrder(pb.CancelOrderRequest(exchange="binance")),
        "order_id",
    ),
    (
        "status without ids",
        lambda s: s.GetOrderStatus(pb.GetOrderStatusRequest(exchange="binance")),
        "order_id",
    ),
    # bounds
    (
        "depth too large",
        lambda s: s.GetOrderBook(
            pb.GetOrderBookRequest(symbol="BTC-USDT", exchange="binance", depth=5000)
        ),
        "depth",
    ),
    (
        "trade limit too large",
        lambda s: s.GetRecentTrades(
            pb.GetRecentTradesRequest(symbol="BTC-USDT", exchange="binance", limit=100000)
        ),
        "limit",
    ),
    (
        "history limit too large",
        lambda s: s.ListTrades(pb.ListTradesRequest(exchange="binance", limit=1001)),
        "limit",
    ),
    (
        "bad ledger asset",
        lambda s: s.ListLedgerEntries(pb.ListLedgerEntriesRequest(exchange="binance", asset="U$D")),
        "asset",
    ),
    # multi-venue requests
    (
        "route without side",
        lambda s: s.PlanRoute(
            pb.PlanRouteRequest(symbol="BTC-USDT", type=pb.ORDER_TYPE_MARKET, quantity="1")
        ),
        "side",
    ),
    (
        "limit route without price",
        lambda s: s.PlanRoute(
            pb.PlanRouteRequest(
                symbol="BTC-USDT", side=pb.SIDE_BUY, type=pb.ORDER_TYPE_LIMIT, quantity="1"
            )
        ),
        "price",
    ),
    (
        "route with a bad quantity",
        lambda s: s.PlanRoute(
            pb.PlanRouteRequest(
                symbol="BTC-USDT", side=pb.SIDE_BUY, type=pb.ORDER_TYPE_MARKET, quantity="1e400"
            )
        ),
        "quantity",
    ),
    (
        "best price with a negative quantity",
        lambda s: s.FindBestPrice(
            pb.FindBestPriceRequest(symbol="BTC-USDT", side=pb.SIDE_SELL, quantity="-2")
        ),
        "quantity",
    ),
    (
        "aggregate over an unknown venue",
        lambda s: s.GetAggregatedMarketData(
            pb.GetAggregatedMarketDataRequest(symbol="BTC-USDT", exchanges=["ftx"])
        ),
        "exchanges[0]",
    ),
    (
        "portfolio in a bad asset",
        lambda s: s.GetPortfolioValue(pb.GetPortfolioValueRequest(quote_asset="US$")),
        "quote_asset",
    ),
    # off-grid values (venue filters)
    ("quantity off the step", lambda s: s.PlaceOrder(limit_order(quantity="0.000001")), "quantity"),
    ("below min notional", lambda s: s.PlaceOrder(limit_order(quantity="0.0001")), "quantity"),
]


@pytest.mark.parametrize(("name", "call", "field"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_invalid_argument_naming_the_field(
    stub: pb_grpc.ExchangeServiceStub, name: str, call: Call, field: str
) -> None:
    error = await expect_error(call(stub), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == [field], error.details()
    assert (error.details() or "").startswith(f"{field}: ")


async def test_stream_requests_are_validated_before_streaming(
    stub: pb_grpc.ExchangeServiceStub,
) -> None:
    for request, field in (
        (pb.StreamQuotesRequest(), "symbols"),
        (pb.StreamQuotesRequest(symbols=["BTC-USDT", "??"]), "symbols[1]"),
        (pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["nowhere"]), "exchanges[0]"),
        (pb.StreamQuotesRequest(symbols=["DOGE-USDT"], exchanges=["binance"]), "symbol"),
    ):
        call = stub.StreamQuotes(request)
        error = await expect_error(call.read(), grpc.StatusCode.INVALID_ARGUMENT)
        assert bad_request_fields(error) == [field]
    book = stub.StreamOrderBook(
        pb.StreamOrderBookRequest(symbol="BTC-USDT", exchange="binance", depth=1001)
    )
    error = await expect_error(book.read(), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["depth"]
