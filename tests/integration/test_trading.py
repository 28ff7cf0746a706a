"""Orders, balances, fills and ledger through gRPC on simulated venues."""

from __future__ import annotations

from decimal import Decimal as D

import grpc

from tests.helpers import bad_request_fields, error_info, expect_error
from titan_grpc.domain import Symbol
from titan_grpc.exchanges.simulated import SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc

BTC_USDT = Symbol("BTC", "USDT")


def expected_buy(world: SimulatedWorld, venue: str, quantity: D) -> tuple[D, D]:
    """Walk the venue's asks by hand: (quote spent before fees, total taker fee)."""
    market = world.engine(venue).markets[BTC_USDT]
    _, asks, _ = world.engine(venue).book(BTC_USDT, 50)
    remaining, notional, fee = quantity, D(0), D(0)
    for level in asks:
        take = min(level.quantity, remaining)
        notional += level.price * take
        fee += (level.price * take * market.taker_fee_rate).quantize(D("0.00000001"))
        remaining -= take
        if remaining == 0:
            break
    return notional, fee


async def balances(stub: pb_grpc.ExchangeServiceStub, venue: str) -> dict[str, tuple[D, D]]:
    answer = await stub.GetBalances(pb.GetBalancesRequest(exchanges=[venue]))
    assert not answer.errors
    (only,) = answer.venues
    assert only.simulated
    return {b.asset: (D(b.free), D(b.locked)) for b in only.balances}


async def test_market_buy_fills_exactly_as_the_book_says(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    before = await balances(stub, "binance")
    notional, fee = expected_buy(world, "binance", D("0.75"))
    answer = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="binance",
            symbol="BTCUSDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_MARKET,
            quantity="0.75",
            client_order_id="mkt-1",
        )
    )
    order = answer.order
    assert order.status == pb.ORDER_STATUS_FILLED
    assert (order.client_order_id, order.simulated) == ("mkt-1", True)
    assert D(order.filled_quantity) == D("0.75")
    assert D(order.filled_quote_quantity) == notional
    assert D(order.fee) == fee and order.fee_asset == "USDT"
    assert D(order.average_fill_price) == (notional / D("0.75")).quantize(D("1e-10"))
    assert sum(D(f.quantity) for f in order.fills) == D("0.75")
    after = await balances(stub, "binance")
    assert after["USDT"][0] == before["USDT"][0] - notional - fee
    assert after["BTC"][0] == before["BTC"][0] + D("0.75")


async def test_limit_order_rests_fills_on_a_move_and_shows_in_history(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    bids, _, _ = world.engine("coinbase").book(BTC_USDT, 1)
    price = bids[0].price - D("100")
    placed = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="coinbase",
            symbol="BTC-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_LIMIT,
            quantity="0.1",
            price=str(price),
        )
    )
    order = placed.order
    assert order.status == pb.ORDER_STATUS_NEW
    assert order.time_in_force == pb.TIME_IN_FORCE_GTC
    assert len(order.client_order_id) == 36  # generated UUID, returned
    locked = (price * D("0.1") * D("1.004")).quantize(D("0.00000001"))
    assert (await balances(stub, "coinbase"))["USDT"] == (D("50000") - locked, locked)

    by_client = await stub.GetOrderStatus(
        pb.GetOrderStatusRequest(exchange="coinbase", client_order_id=order.client_order_id)
    )
    assert by_client.order.order_id == order.order_id

    # Drive the simulated market down through the order's price.
    engine = world.engine("coinbase")
    engine.set_book(BTC_USDT, [], [type(bids[0])(price - D("1"), D("1"))], price)
    status = await stub.GetOrderStatus(
        pb.GetOrderStatusRequest(exchange="coinbase", order_id=order.order_id)
    )
    assert status.order.status == pb.ORDER_STATUS_FILLED
    (fill,) = status.order.fills
    assert (D(fill.price), fill.liquidity) == (price, pb.LIQUIDITY_MAKER)
    assert D(fill.fee) == (price * D("0.1") * D("0.004")).quantize(D("0.00000001"))

    trades = await stub.ListTrades(pb.ListTradesRequest(exchange="coinbase", symbol="BTC-USDT"))
    assert [t.order_id for t in trades.trades] == [order.order_id]
    assert trades.simulated
    ledger = await stub.ListLedgerEntries(
        pb.ListLedgerEntriesRequest(exchange="coinbase", asset="USDT", limit=3)
    )
    assert [e.type for e in ledger.entries] == [
        pb.LEDGER_ENTRY_TYPE_FEE,
        pb.LEDGER_ENTRY_TYPE_TRADE,
        pb.LEDGER_ENTRY_TYPE_DEPOSIT,
    ]
    assert D(ledger.entries[0].balance_after) == D("50000") - price * D("0.1") - D(fill.fee)


async def test_cancel_by_client_id_releases_funds(stub: pb_grpc.ExchangeServiceStub) -> None:
    placed = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="kucoin",
            symbol="BTC-USDT",
            side=pb.SIDE_SELL,
            type=pb.ORDER_TYPE_LIMIT,
            quantity="0.2",
            price="99999.9",
            client_order_id="sell-far",
        )
    )
    assert (await balances(stub, "kucoin"))["BTC"] == (D("0.05"), D("0.2"))
    cancelled = await stub.CancelOrder(
        pb.CancelOrderRequest(exchange="kucoin", client_order_id="sell-far")
    )
    assert cancelled.order.order_id == placed.order.order_id
    assert cancelled.order.status == pb.ORDER_STATUS_CANCELED
    assert (await balances(stub, "kucoin"))["BTC"] == (D("0.25"), D(0))
    again = await expect_error(
        stub.CancelOrder(pb.CancelOrderRequest(exchange="kucoin", client_order_id="sell-far")),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert error_info(again).reason == "ORDER_NOT_CANCELABLE"


async def test_ioc_and_fok_semantics_over_the_wire(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    _, asks, _ = world.engine("binance").book(BTC_USDT, 1)
    best = asks[0]
    ioc = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="binance",
            symbol="BTC-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_LIMIT,
            quantity=str(best.quantity + D("0.5")),
            price=str(best.price),
            time_in_force=pb.TIME_IN_FORCE_IOC,
        )
    )
    assert ioc.order.status == pb.ORDER_STATUS_EXPIRED
    assert D(ioc.order.filled_quantity) == best.quantity
    fok = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="binance",
            symbol="BTC-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_MARKET,
            quantity="1000",
            time_in_force=pb.TIME_IN_FORCE_FOK,
        )
    )
    assert fok.order.status == pb.ORDER_STATUS_EXPIRED
    assert D(fok.order.filled_quantity) == 0 and not fok.order.fills


async def test_business_errors_map_to_precise_codes(stub: pb_grpc.ExchangeServiceStub) -> None:
    poor = await expect_error(
        stub.PlaceOrder(
            pb.PlaceOrderRequest(
                exchange="kucoin",
                symbol="BTC-USDT",
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_LIMIT,
                quantity="10",
                price="40000",
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert error_info(poor).reason == "INSUFFICIENT_FUNDS"
    assert error_info(poor).metadata["exchange"] == "kucoin"

    order = pb.PlaceOrderRequest(
        exchange="mock",
        symbol="BTC-USDT",
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_LIMIT,
        quantity="0.001",
        price="30000",
        client_order_id="dup",
    )
    first = await stub.PlaceOrder(order)
    again = await stub.PlaceOrder(order)  # idempotent: the same order, not a second one
    assert again.order.order_id == first.order.order_id
    assert len((await stub.ListOrders(pb.ListOrdersRequest(exchange="mock"))).orders) == 1
    changed = pb.PlaceOrderRequest()
    changed.CopyFrom(order)
    changed.quantity = "0.002"
    reused = await expect_error(stub.PlaceOrder(changed), grpc.StatusCode.ALREADY_EXISTS)
    assert "different order" in (reused.details() or "")

    await expect_error(
        stub.GetOrderStatus(pb.GetOrderStatusRequest(exchange="mock", order_id="SIM-MOC-99")),
        grpc.StatusCode.NOT_FOUND,
    )
    off_tick = await expect_error(
        stub.PlaceOrder(
            pb.PlaceOrderRequest(
                exchange="binance",
                symbol="BTC-USDT",
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_LIMIT,
                quantity="0.001",
                price="30000.005",
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert bad_request_fields(off_tick) == ["price"]
    assert "PRICE_FILTER" in (off_tick.details() or "")
    assert "30000 and 30000.01" in (off_tick.details() or "")
    post_only = await expect_error(
        stub.PlaceOrder(
            pb.PlaceOrderRequest(
                exchange="binance",
                symbol="BTC-USDT",
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_LIMIT,
                quantity="0.001",
                price="99999",
                post_only=True,
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert error_info(post_only).reason == "ORDER_REJECTED"


async def test_balances_for_all_venues_side_by_side(stub: pb_grpc.ExchangeServiceStub) -> None:
    answer = await stub.GetBalances(pb.GetBalancesRequest())
    assert [v.exchange for v in answer.venues] == ["binance", "coinbase", "kucoin"]
    binance = {b.asset: b for b in answer.venues[0].balances}
    assert (binance["USDT"].free, binance["USDT"].locked, binance["USDT"].total) == (
        "100000",
        "0",
        "100000",
    )
