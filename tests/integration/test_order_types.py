"""Quote-sized market orders and stop orders on the fake venues and the simulator."""

from __future__ import annotations

from decimal import ROUND_DOWN
from decimal import Decimal as D

import grpc
import pytest

from tests.helpers import bad_request_fields, expect_error
from tests.trader_venues import Venues, venues
from titan_grpc.domain import Symbol
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

__all__ = ["venues"]  # the shared fixture


def spend(exchange: str, symbol: str, quote: str, cid: str = "") -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        exchange=exchange,
        symbol=symbol,
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_MARKET,
        quote_quantity=quote,
        client_order_id=cid,
    )


def expected_spend(levels: list[tuple[D, D]], quote: D, step: D) -> tuple[D, D]:
    """(base bought, quote spent): whole steps per level while the cost fits in ``quote``."""
    bought, spent = D(0), D(0)
    for price, size in levels:
        take = min(size, ((quote - spent) / price / step).to_integral_value(ROUND_DOWN) * step)
        if take <= 0:
            break
        bought, spent = bought + take, spent + price * take
    return bought, spent


@pytest.mark.parametrize(
    ("exchange", "symbol", "asks", "step"),
    [
        ("binance", "BTC-USDT", [(D("43001"), D("0.5"))], D("0.00001")),  # quoteOrderQty
        ("coinbase", "BTC-USD", [(D("43001"), D("0.5"))], D("0.00000001")),  # funds
        ("kucoin", "BTC-USDT", [(D("43000.5"), D("0.4"))], D("0.00000001")),  # funds
    ],
)
async def test_a_quote_sized_market_order_spends_the_quote_amount_the_filters_allow(
    venues: Venues,
    exchange: str,
    symbol: str,
    asks: list[tuple[D, D]],
    step: D,
) -> None:
    order = (await venues.stub.PlaceOrder(spend(exchange, symbol, "100", f"{exchange}-q"))).order
    bought, spent = expected_spend(asks, D("100"), step)
    assert order.status == pb.ORDER_STATUS_FILLED
    assert D(order.filled_quantity) == bought
    assert D(order.filled_quote_quantity) == spent
    assert spent <= D("100") < spent + asks[0][0] * step  # one more step would overspend
    assert order.quote_quantity == "100"
    # The venue got the quote amount itself (the fake derives the quantity as the venue does).
    journal = await venues.stub.ListOrders(pb.ListOrdersRequest(exchange=exchange))
    assert journal.orders[0].intent.quote_quantity == "100"
    assert not journal.orders[0].intent.quantity or journal.orders[0].intent.quantity == "0"


async def test_the_simulator_spends_the_quote_amount_level_by_level(venues: Venues) -> None:
    stub = venues.stub
    book = (
        await stub.GetOrderBook(
            pb.GetOrderBookRequest(exchange="mock", symbol="BTC-USDT", depth=50)
        )
    ).book
    step = venues.world.engine("mock").market(Symbol("BTC", "USDT")).step_size
    levels = [(D(level.price), D(level.quantity)) for level in book.asks]
    quote = (levels[0][0] * levels[0][1] * D("1.5")).quantize(D("0.01"))  # crosses a level
    order = (await stub.PlaceOrder(spend("mock", "BTC-USDT", str(quote), "sim-q"))).order
    bought, spent = expected_spend(levels, quote, step)
    assert len(order.fills) >= 2
    assert (D(order.filled_quantity), D(order.filled_quote_quantity)) == (bought, spent)
    assert order.status == pb.ORDER_STATUS_FILLED and order.simulated


async def test_quote_quantity_is_checked(venues: Venues) -> None:
    both = spend("mock", "BTC-USDT", "100")
    both.quantity = "0.01"
    error = await expect_error(venues.stub.PlaceOrder(both), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["quote_quantity"]
    limit = spend("mock", "BTC-USDT", "100")
    limit.type, limit.price = pb.ORDER_TYPE_LIMIT, "40000"
    error = await expect_error(venues.stub.PlaceOrder(limit), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["quote_quantity"]
    tiny = spend("binance", "BTC-USDT", "1")  # below the 5 USDT minimum notional
    error = await expect_error(venues.stub.PlaceOrder(tiny), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["quote_quantity"]
    assert venues.binance.requests[("POST", "/api/v3/order")] == 0


# ---- stop orders ------------------------------------------------------------------------


def stop(
    exchange: str,
    symbol: str,
    kind: int,
    stop_price: str,
    *,
    side: int = pb.SIDE_SELL,
    price: str = "",
    quantity: str = "0.01",
    cid: str = "",
) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        exchange=exchange,
        symbol=symbol,
        side=side,
        type=kind,
        quantity=quantity,
        price=price,
        stop_price=stop_price,
        client_order_id=cid,
    )


async def test_binance_stop_orders_rest_until_triggered(venues: Venues) -> None:
    stub = venues.stub
    loss = (
        await stub.PlaceOrder(
            stop("binance", "BTC-USDT", pb.ORDER_TYPE_STOP_LIMIT, "42000", price="41990", cid="sl")
        )
    ).order
    assert (loss.type, loss.status, loss.stop_price, loss.price) == (
        pb.ORDER_TYPE_STOP_LIMIT,
        pb.ORDER_STATUS_NEW,
        "42000",
        "41990",
    )
    venue_order = next(iter(venues.binance.orders.values()))
    assert (venue_order["type"], venue_order["stopPrice"]) == ("STOP_LOSS_LIMIT", "42000")
    market_stop = (
        await stub.PlaceOrder(stop("binance", "BTC-USDT", pb.ORDER_TYPE_STOP_MARKET, "41000"))
    ).order
    assert market_stop.type == pb.ORDER_TYPE_STOP_MARKET
    listed = await stub.ListOpenOrders(pb.ListOpenOrdersRequest(exchanges=["binance"]))
    assert {o.stop_price for o in listed.orders} == {"42000", "41000"}
    # A sell stop above the market would trigger at once: the venue refuses it.
    error = await expect_error(
        stub.PlaceOrder(stop("binance", "BTC-USDT", pb.ORDER_TYPE_STOP_MARKET, "44000")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "trigger immediately" in (error.details() or "")


async def test_venues_without_a_stop_type_answer_failed_precondition(venues: Venues) -> None:
    stub = venues.stub
    for exchange, symbol, kind in (
        ("coinbase", "BTC-USD", pb.ORDER_TYPE_STOP_MARKET),
        ("kucoin", "BTC-USDT", pb.ORDER_TYPE_STOP_LIMIT),
        ("kucoin", "BTC-USDT", pb.ORDER_TYPE_STOP_MARKET),
    ):
        price = "40000" if kind == pb.ORDER_TYPE_STOP_LIMIT else ""
        error = await expect_error(
            stub.PlaceOrder(stop(exchange, symbol, kind, "41000", price=price)),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        assert exchange in (error.details() or "")
    assert venues.coinbase.requests["POST /orders"] == 0
    assert venues.kucoin.requests["POST /api/v1/hf/orders"] == 0


async def test_coinbase_stop_limit_goes_out_as_a_limit_order_with_a_stop(venues: Venues) -> None:
    order = (
        await venues.stub.PlaceOrder(
            stop(
                "coinbase",
                "BTC-USD",
                pb.ORDER_TYPE_STOP_LIMIT,
                "44000",
                side=pb.SIDE_BUY,
                price="44010",
                cid="cb-stop",
            )
        )
    ).order
    assert (order.type, order.status, order.stop_price) == (
        pb.ORDER_TYPE_STOP_LIMIT,
        pb.ORDER_STATUS_NEW,
        "44000",
    )
    (venue_order,) = venues.coinbase.orders.values()
    assert (venue_order["type"], venue_order["stop"], venue_order["stop_price"]) == (
        "limit",
        "entry",
        "44000",
    )
    status = await venues.stub.GetOrderStatus(
        pb.GetOrderStatusRequest(exchange="coinbase", client_order_id="cb-stop")
    )
    assert status.order.type == pb.ORDER_TYPE_STOP_LIMIT and status.order.stop_price == "44000"


async def test_stop_fields_are_checked(venues: Venues) -> None:
    stub = venues.stub
    missing = stop("mock", "BTC-USDT", pb.ORDER_TYPE_STOP_MARKET, "")
    error = await expect_error(stub.PlaceOrder(missing), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["stop_price"]
    on_limit = stop("mock", "BTC-USDT", pb.ORDER_TYPE_LIMIT, "100", price="100")
    error = await expect_error(stub.PlaceOrder(on_limit), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["stop_price"]
    no_price = stop("mock", "BTC-USDT", pb.ORDER_TYPE_STOP_LIMIT, "100")
    error = await expect_error(stub.PlaceOrder(no_price), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["price"]
    off_tick = stop("binance", "BTC-USDT", pb.ORDER_TYPE_STOP_MARKET, "41000.001")
    error = await expect_error(stub.PlaceOrder(off_tick), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["stop_price"]


async def test_a_simulated_stop_rests_until_the_price_crosses_it(venues: Venues) -> None:
    stub, world = venues.stub, venues.world
    btc = Symbol("BTC", "USDT")
    mid = world.venue_mid("mock", btc)
    stop_price = (mid * D("0.9996")).quantize(D("0.01"))  # a sell stop just below the market
    placed = (
        await stub.PlaceOrder(
            stop("mock", "BTC-USDT", pb.ORDER_TYPE_STOP_MARKET, str(stop_price), cid="sim-stop")
        )
    ).order
    assert placed.status == pb.ORDER_STATUS_NEW and not placed.fills
    crossed_at = None
    for tick in range(3000):
        world.advance()
        mid = world.venue_mid("mock", btc)
        state = world.engine("mock").order(client_order_id="sim-stop")
        if mid > stop_price:
            assert state.status.value == "new", f"triggered early at tick {tick} ({mid})"
        else:
            crossed_at = mid
            break
    assert crossed_at is not None, "the random walk never reached the stop price"
    assert tick > 0  # it did rest through market moves first
    order = (
        await stub.GetOrderStatus(
            pb.GetOrderStatusRequest(exchange="mock", client_order_id="sim-stop")
        )
    ).order
    assert order.status == pb.ORDER_STATUS_FILLED
    assert D(order.filled_quantity) == D("0.01") and D(order.stop_price) == stop_price
    assert all(fill.liquidity == pb.LIQUIDITY_TAKER for fill in order.fills)


async def test_a_simulated_stop_that_would_trigger_at_once_is_rejected(venues: Venues) -> None:
    mid = venues.world.venue_mid("mock", Symbol("BTC", "USDT"))
    above = str((mid * D("1.01")).quantize(D("0.01")))
    error = await expect_error(
        venues.stub.PlaceOrder(stop("mock", "BTC-USDT", pb.ORDER_TYPE_STOP_MARKET, above)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "trigger immediately" in (error.details() or "")


async def test_new_order_types_are_idempotent_and_journaled(venues: Venues) -> None:
    stub = venues.stub
    mid = venues.world.venue_mid("mock", Symbol("BTC", "USDT"))
    request = stop(
        "mock",
        "BTC-USDT",
        pb.ORDER_TYPE_STOP_LIMIT,
        str((mid * D("0.98")).quantize(D("0.01"))),
        price=str((mid * D("0.97")).quantize(D("0.01"))),
        cid="again",
    )
    first = (await stub.PlaceOrder(request)).order
    second = (await stub.PlaceOrder(request)).order
    assert first.order_id == second.order_id
    assert len(venues.world.engine("mock").open_orders(None)) == 1
    changed = pb.PlaceOrderRequest()
    changed.CopyFrom(request)
    changed.stop_price = str((mid * D("0.95")).quantize(D("0.01")))
    await expect_error(stub.PlaceOrder(changed), grpc.StatusCode.ALREADY_EXISTS)
    (entry,) = (await stub.ListOrders(pb.ListOrdersRequest(exchange="mock"))).orders
    assert entry.intent.type == pb.ORDER_TYPE_STOP_LIMIT
    assert D(entry.intent.stop_price) == D(request.stop_price)
    quote = spend("mock", "BTC-USDT", "150", "q-again")
    one = (await stub.PlaceOrder(quote)).order
    two = (await stub.PlaceOrder(quote)).order
    assert one.order_id == two.order_id and one.filled_quote_quantity == two.filled_quote_quantity
