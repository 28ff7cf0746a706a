"""StreamQuotes and StreamOrderBook: fan-out, updates, cancellation, deadlines, shutdown."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from decimal import Decimal as D

import grpc

from titan_grpc.domain import Symbol
from titan_grpc.exchanges.simulated import SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway

PAIRS = {
    ("binance", "BTC-USDT"),
    ("binance", "ETH-USDT"),
    ("kucoin", "BTC-USDT"),
    ("kucoin", "ETH-USDT"),
}


async def until(condition: Callable[[], bool], limit_seconds: float = 5.0) -> None:
    """Wait for a condition the server reaches asynchronously (cleanup after a cancel)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_seconds
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def read_quotes(call: object, count: int) -> list[pb.Quote]:
    quotes = []
    for _ in range(count):
        message = await call.read()  # type: ignore[attr-defined]
        assert message.HasField("quote"), message
        quotes.append(message.quote)
    return quotes


def assert_matches_world(quote: pb.Quote, world: SimulatedWorld) -> None:
    symbol = Symbol(*quote.symbol.split("-"))
    bids, asks, _ = world.engine(quote.exchange).book(symbol, 1)
    assert (D(quote.bid), D(quote.bid_size)) == (bids[0].price, bids[0].quantity)
    assert (D(quote.ask), D(quote.ask_size)) == (asks[0].price, asks[0].quantity)
    assert quote.source.simulated and quote.source.exchange == quote.exchange


async def test_several_subscribers_each_get_every_update(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    request = pb.StreamQuotesRequest(
        symbols=["BTCUSDT", "eth-usdt"], exchanges=["binance", "kucoin"]
    )
    calls = [stub.StreamQuotes(request) for _ in range(3)]
    for call in calls:
        first = await read_quotes(call, 4)
        assert {(q.exchange, q.symbol) for q in first} == PAIRS
        assert {q.sequence for q in first} == {1}
        for quote in first:
            assert_matches_world(quote, world)
    world.advance()
    for call in calls:
        second = await read_quotes(call, 4)
        assert {(q.exchange, q.symbol) for q in second} == PAIRS
        assert {q.sequence for q in second} == {2}
        for quote in second:
            assert_matches_world(quote, world)
    for call in calls:
        call.cancel()
    await until(lambda: world.active_watchers == 0)


async def test_cancelling_a_stream_releases_its_upstream_and_tasks(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    await stub.GetStatus(pb.GetStatusRequest())
    baseline_tasks = len(asyncio.all_tasks())
    call = stub.StreamQuotes(
        pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["binance", "coinbase"])
    )
    await read_quotes(call, 2)
    assert world.active_watchers == 2
    call.cancel()
    await until(lambda: world.active_watchers == 0)
    await until(lambda: len(asyncio.all_tasks()) <= baseline_tasks)


async def test_stream_deadline_ends_the_stream_and_releases_it(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    call = stub.StreamQuotes(
        pb.StreamQuotesRequest(symbols=["SOL-USDT"], exchanges=["coinbase"]), timeout=0.3
    )
    await read_quotes(call, 1)
    try:
        await call.read()
        raise AssertionError("stream outlived its deadline")
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await until(lambda: world.active_watchers == 0)


async def test_all_exchanges_when_none_named(stub: pb_grpc.ExchangeServiceStub) -> None:
    call = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["ETH-BTC"]))
    quotes = await read_quotes(call, 3)
    assert {q.exchange for q in quotes} == {"binance", "coinbase", "kucoin"}
    call.cancel()


async def test_order_book_stream_follows_trading_and_ticks(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    call = stub.StreamOrderBook(
        pb.StreamOrderBookRequest(symbol="BTC-USDT", exchange="binance", depth=3)
    )
    first = (await call.read()).book
    assert len(first.asks) == 3 and first.source.simulated
    best_ask = first.asks[0]
    await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="binance",
            symbol="BTC-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_MARKET,
            quantity=best_ask.quantity,
        )
    )
    second = (await call.read()).book
    assert second.asks[0].price != best_ask.price  # the best level was taken
    assert second.sequence > first.sequence
    world.advance()
    third = (await call.read()).book
    bids, _, sequence = world.engine("binance").book(Symbol("BTC", "USDT"), 3)
    assert [D(level.price) for level in third.bids] == [level.price for level in bids]
    assert third.sequence == sequence
    call.cancel()


async def test_shutdown_ends_open_streams_with_a_notice(
    gateway: Gateway, stub: pb_grpc.ExchangeServiceStub
) -> None:
    quotes = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["mock"]))
    book = stub.StreamOrderBook(pb.StreamOrderBookRequest(symbol="BTC-USDT", exchange="mock"))
    await read_quotes(quotes, 1)
    await book.read()
    stopping = asyncio.create_task(gateway.stop(grace=5.0))
    notice = await quotes.read()
    assert notice.notice.kind == pb.STREAM_NOTICE_KIND_SHUTDOWN
    assert (await book.read()).notice.kind == pb.STREAM_NOTICE_KIND_SHUTDOWN
    assert await quotes.read() == grpc.aio.EOF
    assert await quotes.code() == grpc.StatusCode.OK
    await stopping


async def test_many_subscribers_share_one_upstream_feed(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    request = pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["coinbase"])
    calls = [stub.StreamQuotes(request) for _ in range(5)]
    for call in calls:
        await read_quotes(call, 1)
    assert world.active_watchers == 1  # one venue feed however many clients watch it
    for call in calls[:4]:
        call.cancel()
    world.advance()
    assert (await read_quotes(calls[4], 1))[0].sequence == 2  # the last one still flows
    calls[4].cancel()
    await until(lambda: world.active_watchers == 0)


async def test_a_stalled_subscriber_neither_delays_others_nor_gets_stale_quotes(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    request = pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["binance"])
    stalled, fast = stub.StreamQuotes(request), stub.StreamQuotes(request)
    await read_quotes(stalled, 1)
    last = (await read_quotes(fast, 1))[0]
    for _ in range(600):
        world.advance()
        last = (await read_quotes(fast, 1))[0]  # the fast reader is served every time
    # The stalled reader catches up in order and ends on the newest quote. (Whether it was
    # conflated depends on how much grpc buffered for it; conflation itself is pinned in
    # the hub's unit tests and the fan-out benchmark's stalled run.)
    seen = [(await read_quotes(stalled, 1))[0]]
    while seen[-1].sequence < last.sequence:
        seen.append((await read_quotes(stalled, 1))[0])
    assert seen[-1] == last
    assert all(a.sequence < b.sequence for a, b in itertools.pairwise(seen))
    stalled.cancel()
    fast.cancel()
    await until(lambda: world.active_watchers == 0)
