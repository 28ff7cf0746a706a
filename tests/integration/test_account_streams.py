"""Account streams over the wire against the simulated venues' private feeds: every
change once and in order per subscriber, a dropped private connection caught up with
every fill exactly once after RECOVERED, the journal and GetOrderStatus current without
a venue request, and one private connection however many subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal as D
from typing import Any

import grpc
import pytest

from tests.conftest import make_settings
from titan_grpc.domain import (
    OrderRequest,
    OrderType,
    PriceLevel,
    Side,
    Symbol,
    TimeInForce,
)
from titan_grpc.exchanges.simulated import SimulatedWorld
from titan_grpc.exchanges.simulated.adapter import SimulatedExchange
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.market.account import AccountFeeds
from titan_grpc.server import Gateway, start_gateway

BTC_USDT = Symbol("BTC", "USDT")
VENUE = "coinbase"


@pytest.fixture
async def gateway(world: SimulatedWorld) -> AsyncIterator[Gateway]:
    running = await start_gateway(make_settings(portfolio_interval_ms=0), world=world)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


def accounts_of(gateway: Gateway) -> AccountFeeds:
    service: Any = gateway.end_streams.__self__  # type: ignore[attr-defined]
    feeds: AccountFeeds = service._accounts
    return feeds


def adapter(gateway: Gateway, venue: str = VENUE) -> SimulatedExchange:
    backend = gateway.registry.resolve(venue)
    assert isinstance(backend, SimulatedExchange)
    return backend


async def until(gateway: Gateway, condition: Callable[[], bool]) -> None:
    """Wait for a state the private feeds reach on their own (woken by the feeds)."""
    async with asyncio.timeout(10):
        await accounts_of(gateway).wait_until(condition)


async def live_with(gateway: Gateway, subscribers: int, venue: str = VENUE) -> None:
    feeds = accounts_of(gateway)
    await until(
        gateway,
        lambda: feeds.tracker(venue).live and feeds.hub.subscriber_count(venue) >= subscribers,
    )


async def read_updates(call: Any, count: int) -> list[pb.StreamOrderUpdatesResponse]:
    got = []
    async with asyncio.timeout(10):
        while len(got) < count:
            got.append(await call.read())
    return got


def describe(message: pb.StreamOrderUpdatesResponse) -> tuple[Any, ...]:
    if message.HasField("notice"):
        return ("notice", message.notice.kind)
    update = message.update
    return (
        update.kind,
        update.order.client_order_id,
        update.order.status,
        update.order.filled_quantity,
        update.fill.trade_id if update.HasField("fill") else "",
    )


def best(world: SimulatedWorld, venue: str = VENUE) -> tuple[D, D, D]:
    bids, asks, _ = world.engine(venue).book(BTC_USDT, 1)
    return bids[0].price, asks[0].price, asks[0].quantity


async def place_limit_buy(
    stub: pb_grpc.ExchangeServiceStub, price: D, quantity: str, cid: str
) -> pb.Order:
    placed = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange=VENUE,
            symbol="BTC-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_LIMIT,
            quantity=quantity,
            price=str(price),
            client_order_id=cid,
        )
    )
    return placed.order


def move_through(world: SimulatedWorld, price: D) -> None:
    """Drive the simulated market down through ``price``: resting buys there fill."""
    world.engine(VENUE).set_book(BTC_USDT, [], [PriceLevel(price - 1, D(1))], price)


async def test_each_subscriber_gets_every_change_once_in_order(
    gateway: Gateway, stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    calls = [
        stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest(exchanges=[VENUE])) for _ in range(3)
    ]
    await live_with(gateway, 3)
    _, ask, ask_size = best(world)
    # Crosses the best ask partly, rests the rest: NEW, a partial fill.
    order = await place_limit_buy(stub, ask, str(ask_size + D("0.5")), "acct-a")
    assert order.placed_by_gateway
    move_through(world, ask)  # the rest fills as maker
    other = await place_limit_buy(stub, ask - 1000, "0.01", "acct-b")
    await stub.CancelOrder(pb.CancelOrderRequest(exchange=VENUE, order_id=other.order_id))

    fills = world.engine(VENUE).fills(BTC_USDT, order.order_id, 10)[::-1]
    expected = [
        (pb.ORDER_UPDATE_KIND_STATE, "acct-a", pb.ORDER_STATUS_NEW, "0", ""),
        (
            pb.ORDER_UPDATE_KIND_FILL,
            "acct-a",
            pb.ORDER_STATUS_PARTIALLY_FILLED,
            str(ask_size),
            fills[0].trade_id,
        ),
        (
            pb.ORDER_UPDATE_KIND_FILL,
            "acct-a",
            pb.ORDER_STATUS_FILLED,
            str(ask_size + D("0.5")),
            fills[1].trade_id,
        ),
        (pb.ORDER_UPDATE_KIND_STATE, "acct-b", pb.ORDER_STATUS_NEW, "0", ""),
        (pb.ORDER_UPDATE_KIND_STATE, "acct-b", pb.ORDER_STATUS_CANCELED, "0", ""),
    ]
    for call in calls:
        got = await read_updates(call, len(expected))
        assert [describe(m) for m in got] == expected
        last_fill = got[2].update
        assert last_fill.order.placed_by_gateway
        assert last_fill.order.average_fill_price
        assert D(last_fill.order.fee) == sum(f.fee for f in fills)
        assert last_fill.fill.liquidity == pb.LIQUIDITY_MAKER
        call.cancel()


async def test_dropped_private_connection_delivers_every_fill_once_after_recovered(
    gateway: Gateway,
    stub: pb_grpc.ExchangeServiceStub,
    world: SimulatedWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    call = stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest(symbols=["BTC-USDT"]))
    await live_with(gateway, 1)
    _, ask, ask_size = best(world)
    order = await place_limit_buy(stub, ask, str(ask_size + D("0.25")), "drop-a")
    first = await read_updates(call, 2)  # NEW, the partial fill
    assert [describe(m)[2] for m in first] == [
        pb.ORDER_STATUS_NEW,
        pb.ORDER_STATUS_PARTIALLY_FILLED,
    ]

    venue = adapter(gateway)
    venue.drop_account_feeds()
    move_through(world, ask)  # fills while the private connection is down
    rest = await read_updates(call, 3)
    assert [describe(m) for m in rest[:2]] == [
        ("notice", pb.STREAM_NOTICE_KIND_GAP),
        ("notice", pb.STREAM_NOTICE_KIND_RECOVERED),
    ]
    fills = world.engine(VENUE).fills(BTC_USDT, order.order_id, 10)[::-1]
    assert describe(rest[2]) == (
        pb.ORDER_UPDATE_KIND_FILL,
        "drop-a",
        pb.ORDER_STATUS_FILLED,
        str(ask_size + D("0.25")),
        fills[1].trade_id,
    )
    assert venue.account_connections == 2

    # The journal and GetOrderStatus agree with the venue, without asking it.
    def no_venue_request(*args: object, **kwargs: object) -> None:
        raise AssertionError("GetOrderStatus asked the venue")

    monkeypatch.setattr(venue, "get_order", no_venue_request)
    status = await stub.GetOrderStatus(
        pb.GetOrderStatusRequest(exchange=VENUE, client_order_id="drop-a")
    )
    truth = world.engine(VENUE).order(order_id=order.order_id)
    assert status.order.status == pb.ORDER_STATUS_FILLED
    assert D(status.order.filled_quantity) == truth.filled_quantity
    assert D(status.order.fee) == truth.fee
    assert [f.trade_id for f in status.order.fills] == [f.trade_id for f in truth.fills]
    journaled = await stub.ListOrders(pb.ListOrdersRequest(exchange=VENUE))
    (entry,) = [e for e in journaled.orders if e.client_order_id == "drop-a"]
    assert entry.order.status == pb.ORDER_STATUS_FILLED
    assert D(entry.order.filled_quantity) == truth.filled_quantity
    call.cancel()


async def test_two_hundred_subscribers_cost_one_private_connection(
    gateway: Gateway, stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    calls = [stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest()) for _ in range(200)]
    await live_with(gateway, 200)
    for venue in ("binance", "coinbase", "kucoin"):
        assert adapter(gateway, venue).account_connections == 1
    bid, _, _ = best(world)
    await place_limit_buy(stub, bid - 500, "0.01", "fan-out")
    for call in calls:
        (message,) = await read_updates(call, 1)
        assert describe(message)[1:3] == ("fan-out", pb.ORDER_STATUS_NEW)
        call.cancel()
    for venue in ("binance", "coinbase", "kucoin"):
        assert adapter(gateway, venue).account_connections == 1


async def test_feed_stays_open_for_open_orders_and_the_journal_follows(
    gateway: Gateway, stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    bid, _, _ = best(world)
    order = await place_limit_buy(stub, bid - 200, "0.02", "kept")
    feeds = accounts_of(gateway)
    await until(gateway, lambda: feeds.tracker(VENUE).live)  # opened with nobody listening
    move_through(world, bid - 200)
    # The journal learns the fill before anyone could hear of it; then, no open orders
    # left and nobody listening, the private feed closes.
    await until(gateway, lambda: feeds.hub.subscriber_count(VENUE) == 0)
    entry = await gateway.journal.get(VENUE, "kept")
    assert entry is not None and entry.order is not None
    assert entry.order.status.value == "filled"
    assert entry.order.order_id == order.order_id


async def test_balances_and_portfolio_value_follow_a_trade(
    gateway: Gateway, stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    balances = stub.StreamBalances(pb.StreamBalancesRequest(exchanges=[VENUE]))
    portfolio = stub.StreamPortfolioValue(
        pb.StreamPortfolioValueRequest(quote_asset="USDT", exchanges=[VENUE])
    )
    first = await portfolio.read()
    snapshot = await stub.GetPortfolioValue(
        pb.GetPortfolioValueRequest(quote_asset="USDT", exchanges=[VENUE])
    )
    assert D(first.value.total_value) == D(snapshot.total_value)
    await live_with(gateway, 2)
    bid, _, _ = best(world)
    price = bid - 300
    await place_limit_buy(stub, price, "0.1", "bal")
    async with asyncio.timeout(10):
        message = await balances.read()
    (usdt,) = [b for b in message.balances.balances if b.asset == "USDT"]
    locked = (price * D("0.1") * D("1.004")).quantize(D("0.00000001"))
    assert D(usdt.locked) == locked and message.balances.simulated
    move_through(world, price)  # fills: BTC arrives, USDT leaves
    btc = next(b for b in world.engine(VENUE).balances() if b.asset == "BTC").total
    async with asyncio.timeout(10):
        while True:
            value = await portfolio.read()
            held = {a.asset: D(a.quantity) for a in value.value.assets}
            if value.HasField("value") and held.get("BTC") == btc:
                break
    assert value.value.quote_asset == "USDT"
    assert D(value.value.total_value) == sum(D(a.value) for a in value.value.assets)
    balances.cancel()
    portfolio.cancel()


async def test_bad_symbols_are_refused_with_invalid_argument(
    stub: pb_grpc.ExchangeServiceStub,
) -> None:
    call = stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest(symbols=["NOT A SYMBOL"]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_portfolio_value_follows_a_used_price(
    gateway: Gateway, stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    portfolio = stub.StreamPortfolioValue(
        pb.StreamPortfolioValueRequest(quote_asset="USDT", exchanges=[VENUE])
    )
    async with asyncio.timeout(10):
        first = (await portfolio.read()).value
        btc = next(a for a in first.assets if a.asset == "BTC")
        assert btc.price_path == f"BTC-USDT@{VENUE}"
        world.advance()  # every simulated price moves
        bids, asks, _ = world.engine(VENUE).book(BTC_USDT, 1)
        mid = ((bids[0].price + asks[0].price) / 2).quantize(D("1e-8"))
        while True:  # values follow as each used price's quote arrives
            moved = (await portfolio.read()).value
            if D(next(a for a in moved.assets if a.asset == "BTC").price) == mid:
                break
    assert moved.total_value != first.total_value
    portfolio.cancel()


async def test_after_a_restart_the_feed_opens_for_journaled_open_orders(
    world: SimulatedWorld, tmp_path: Any
) -> None:
    settings = make_settings(journal_path=str(tmp_path / "journal.sqlite3"))
    first = await start_gateway(settings, world=world)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
            bid, _, _ = best(world)
            await place_limit_buy(pb_grpc.ExchangeServiceStub(channel), bid - 200, "0.02", "r-1")
        # The feed has seeded (and the journal learnt) before the stop: nothing in flight.
        feeds = accounts_of(first)
        await until(first, lambda: feeds.tracker(VENUE).live and feeds.tracker(VENUE).order(
            client_order_id="r-1") is not None)  # fmt: skip
    finally:
        await first.stop(grace=1.0)
    second = await start_gateway(settings, world=world)
    try:
        feeds = accounts_of(second)
        await until(second, lambda: feeds.tracker(VENUE).live)  # nobody is listening
        move_through(world, bid - 200)
        await until(second, lambda: feeds.hub.subscriber_count(VENUE) == 0)
        entry = await second.journal.get(VENUE, "r-1")
        assert entry is not None and entry.order is not None
        assert entry.order.status.value == "filled"
    finally:
        await second.stop(grace=1.0)


async def test_shutdown_ends_the_account_streams_with_a_notice(
    gateway: Gateway, stub: pb_grpc.ExchangeServiceStub
) -> None:
    updates = stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest(exchanges=[VENUE]))
    portfolio = stub.StreamPortfolioValue(pb.StreamPortfolioValueRequest(exchanges=[VENUE]))
    await portfolio.read()
    await live_with(gateway, 2)
    stopping = asyncio.create_task(gateway.stop(grace=5.0))
    async with asyncio.timeout(10):
        assert (await updates.read()).notice.kind == pb.STREAM_NOTICE_KIND_SHUTDOWN
        assert (await portfolio.read()).notice.kind == pb.STREAM_NOTICE_KIND_SHUTDOWN
        assert await updates.read() == grpc.aio.EOF
    await stopping


async def test_an_order_placed_and_filled_during_a_gap_is_caught_up(
    gateway: Gateway, stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    call = stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest(exchanges=[VENUE]))
    await live_with(gateway, 1)
    bid, _, _ = best(world)
    await place_limit_buy(stub, bid - 500, "0.01", "seen")  # the feed knows the market
    assert describe((await read_updates(call, 1))[0])[1] == "seen"
    adapter(gateway).drop_account_feeds()
    # Placed elsewhere (not through TITAN) and filled while the connection is down.
    request = OrderRequest(
        BTC_USDT, Side.BUY, OrderType.MARKET, D("0.01"), None, TimeInForce.IOC, "elsewhere"
    )
    other = world.engine(VENUE).place(request)
    assert other.status.value == "filled"
    got = await read_updates(call, 2 + len(other.fills))
    assert [describe(m)[0] for m in got[:2]] == ["notice", "notice"]
    fills = [m.update for m in got[2:]]
    assert [f.fill.trade_id for f in fills] == [f.trade_id for f in other.fills]
    assert fills[-1].order.status == pb.ORDER_STATUS_FILLED
    assert fills[0].order.client_order_id == "elsewhere"
    assert not fills[0].order.placed_by_gateway
    call.cancel()
