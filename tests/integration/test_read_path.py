"""The shared read path in real mode against the fake Binance (which counts requests and
enforces its weight budget): many clients cost the venue one request, reads never spend
the trading reserve, and a flood of reads never stops a place or a cancel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.fakes.binance import FakeBinance, Fault
from tests.integration.test_binance import real_settings
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway, start_gateway

TICKER = ("GET", "/api/v3/ticker/24hr")
DEPTH = ("GET", "/api/v3/depth")


@pytest.fixture
async def venue() -> AsyncIterator[FakeBinance]:
    fake = FakeBinance(weight_limit=400)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


async def start(venue: FakeBinance, **overrides: object) -> Gateway:
    settings = replace(real_settings(venue.url), **overrides)  # type: ignore[arg-type]
    return await start_gateway(settings)


@pytest.fixture
async def channel(venue: FakeBinance) -> AsyncIterator[grpc.aio.Channel]:
    gateway = await start(venue, read_max_age_ms=1000)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as opened:
            yield opened
    finally:
        await gateway.stop(grace=0.5)


async def test_a_thousand_identical_reads_cost_the_venue_one_request(
    venue: FakeBinance, channel: grpc.aio.Channel
) -> None:
    stub = pb_grpc.ExchangeServiceStub(channel)
    max_age = 2.0
    request = pb.GetMarketDataRequest(
        symbol="BTC-USDT", exchange="binance", max_age=Duration(seconds=2)
    )
    asked_at = time.time()
    answers = await asyncio.gather(*(stub.GetMarketData(request) for _ in range(1000)))
    assert venue.requests[TICKER] <= 2
    for answer in answers:
        received = answer.ticker.source.received_time.ToDatetime().timestamp()
        # Received from the venue after the callers asked (or within max_age before).
        assert received >= asked_at - max_age
        assert answer.ticker.bid == "43000"


async def test_reads_flood_but_orders_and_cancels_keep_their_budget(venue: FakeBinance) -> None:
    # Every read refreshes (server default max_age 0) so the reads spend all they may.
    gateway = await start(venue, read_max_age_ms=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            refusals: list[grpc.StatusCode] = []
            answered = 0

            async def client(index: int, reads: int = 25) -> None:
                nonlocal answered
                symbol = ("BTC-USDT", "ETH-BTC")[index % 2]
                for _ in range(reads):
                    try:
                        if index % 3:
                            await stub.GetMarketData(
                                pb.GetMarketDataRequest(symbol=symbol, exchange="binance")
                            )
                        else:
                            await stub.GetOrderBook(
                                pb.GetOrderBookRequest(symbol=symbol, exchange="binance")
                            )
                        answered += 1
                    except grpc.aio.AioRpcError as error:
                        refusals.append(error.code())

            # Warm each market once, so every later read has something to fall back on.
            for index in (0, 1, 3, 4):  # both symbols, ticker and book
                await client(index, reads=1)
            flood = [asyncio.create_task(client(i)) for i in range(60)]
            # Until the reads have spent their lane (80 % of 400, less a ticker or a book).
            await asyncio.wait_for(venue.wait_for_weight(310), timeout=30)
            placed = await stub.PlaceOrder(
                pb.PlaceOrderRequest(
                    exchange="binance",
                    symbol="BTC-USDT",
                    side=pb.SIDE_BUY,
                    type=pb.ORDER_TYPE_LIMIT,
                    quantity="0.001",
                    price="42000",
                    client_order_id="flood-1",
                ),
                timeout=2.0,
            )
            cancelled = await stub.CancelOrder(
                pb.CancelOrderRequest(
                    exchange="binance", symbol="BTC-USDT", client_order_id="flood-1"
                ),
                timeout=2.0,
            )
            await asyncio.gather(*flood)
    finally:
        await gateway.stop(grace=0.5)
    assert placed.order.status == pb.ORDER_STATUS_NEW
    assert cancelled.order.status == pb.ORDER_STATUS_CANCELED
    assert refusals == []  # held data answered once the read lane was spent
    assert answered == 4 + 60 * 25
    assert venue.rate_limited == 0  # the venue never had to say 429
    assert venue.max_weight_seen <= venue.weight_limit


async def test_when_the_read_lane_is_spent_held_data_is_marked_or_the_strict_caller_refused(
    venue: FakeBinance,
) -> None:
    gateway = await start(venue, read_max_age_ms=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            request = pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance")
            first = await stub.GetMarketData(request)
            assert "stale" not in first.ticker.source.note
            venue._weight_used = venue.weight_limit  # another client on our IP spent it all
            venue.max_weight_seen = 0
            # The venue answers 429 once; from then on the budget holds reads back locally.
            marked = None
            for _ in range(5):
                answer = await stub.GetMarketData(request)
                if "stale" in answer.ticker.source.note:
                    marked = answer
                    break
            assert marked is not None
            assert marked.ticker.source.received_time == first.ticker.source.received_time
            strict = pb.GetMarketDataRequest(
                symbol="BTC-USDT", exchange="binance", max_age=Duration(nanos=1_000_000)
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetMarketData(strict)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]
            assert status is not None
            assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    finally:
        await gateway.stop(grace=0.5)
    assert venue.rate_limited <= 1  # at most the one 429 that told us


@pytest.mark.parametrize("symbol", ["BTC-USDT", "NOPE-USDT"])
async def test_max_age_is_validated(channel: grpc.aio.Channel, symbol: str) -> None:
    # Checked before the market is looked up: an unknown market is not what the caller
    # hears about first.
    stub = pb_grpc.ExchangeServiceStub(channel)
    never = Duration(seconds=-1)
    for call in (
        stub.GetOrderBook(pb.GetOrderBookRequest(symbol=symbol, exchange="binance", max_age=never)),
        stub.GetMarketData(
            pb.GetMarketDataRequest(symbol=symbol, exchange="binance", max_age=never)
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (caught.value.details() or "").startswith("max_age:")


async def test_a_hung_venue_costs_one_deadline_then_calls_fail_fast_until_a_probe_answers(
    venue: FakeBinance,
) -> None:
    gateway = await start(venue)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            request = pb.GetMarketDataRequest(symbol="ETH-BTC", exchange="binance")
            await stub.GetOrderBook(pb.GetOrderBookRequest(symbol="BTC-USDT", exchange="binance"))
            venue.inject(*TICKER, Fault("latency", 1.5))  # the venue hangs...
            venue.inject("GET", "/api/v3/time", Fault("latency", 1.0))  # ...pings too, a while
            with pytest.raises(grpc.aio.AioRpcError) as hung:
                await stub.GetMarketData(request, timeout=0.5)
            assert hung.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            # Suspect now: no second wait on the venue, for reads or orders.
            with pytest.raises(grpc.aio.AioRpcError) as fast:
                await stub.GetMarketData(request, timeout=5.0)
            assert fast.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "not answering" in (fast.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.PlaceOrder(
                    pb.PlaceOrderRequest(
                        exchange="binance",
                        symbol="BTC-USDT",
                        side=pb.SIDE_BUY,
                        type=pb.ORDER_TYPE_LIMIT,
                        quantity="0.001",
                        price="42000",
                        client_order_id="while-hung",
                    ),
                    timeout=5.0,
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert venue.requests[("POST", "/api/v3/order")] == 0
            assert venue.requests[TICKER] == 1  # the one hanging request, never a second
            await asyncio.wait_for(gateway.monitor.settled("binance"), 10)
            answer = await stub.GetMarketData(request, timeout=5.0)
            assert answer.ticker.bid
    finally:
        await gateway.stop(grace=0.5)
