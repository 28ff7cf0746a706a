"""Binance live streams through gRPC: the fake WebSocket venue misbehaves, the local book
must still match the venue's true book."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from decimal import Decimal as D

import grpc
import pytest

from tests.conftest import make_settings
from tests.fakes.binance import FakeBinance
from tests.fakes.binance_streams import FakeBinanceStreams
from tests.integration.test_binance import FAST_RETRY, venue_settings
from tests.integration.test_streams import until
from tests.streaming import book_is, random_changes, read_until
from titan_grpc.exchanges.binance import BinanceExchange
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway, start_gateway

SYMBOL = "BTCUSDT"
MID, TICK = D("43000.50"), D("0.50")
GAP, RECOVERED = pb.STREAM_NOTICE_KIND_GAP, pb.STREAM_NOTICE_KIND_RECOVERED


@dataclass
class Venue:
    rest: FakeBinance
    streams: FakeBinanceStreams
    adapter: BinanceExchange
    gateway: Gateway
    stub: pb_grpc.ExchangeServiceStub


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    rest = FakeBinance()
    await rest.start()
    streams = FakeBinanceStreams(rest)
    await streams.start()
    settings = venue_settings(rest.url)
    adapter = BinanceExchange(
        replace(settings, ws_url=streams.server.url), retry=FAST_RETRY, total_timeout=2.0
    )
    gateway = await start_gateway(
        make_settings(use_real_exchanges=True), backends={"binance": adapter}
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")
    try:
        yield Venue(rest, streams, adapter, gateway, pb_grpc.ExchangeServiceStub(channel))
    finally:
        await channel.close()
        await gateway.stop(grace=0.5)
        await streams.stop()
        await rest.stop()


def book_request(depth: int = 10) -> pb.StreamOrderBookRequest:
    return pb.StreamOrderBookRequest(exchange="binance", symbol="BTC-USDT", depth=depth)


async def churn(venue: Venue, rng: random.Random, updates: int) -> None:
    for _ in range(updates):
        bids, asks = random_changes(rng, MID, TICK)
        await venue.streams.change_book(SYMBOL, bids, asks)


async def test_book_follows_the_diff_stream(venue: Venue) -> None:
    call = venue.stub.StreamOrderBook(book_request())
    notices: list[int] = []
    first = await read_until(call, lambda m: True, notices)
    assert first.book.source.exchange == "binance" and not first.book.source.simulated
    await venue.streams.server.wait_until(
        lambda: venue.streams.server.subscribers("btcusdt@depth@100ms") == 1
    )
    await churn(venue, random.Random(1), 200)
    message = await read_until(call, book_is(*venue.streams.true_book(SYMBOL, 10)), notices)
    assert message.book.sequence == venue.rest.symbols[SYMBOL].update_id
    assert notices == []  # a clean feed never reports a gap
    # One REST snapshot aligned the book; every later change came from the stream.
    assert venue.rest.requests[("GET", "/api/v3/depth")] == 1
    call.cancel()


@pytest.mark.parametrize("fault", ["skip", "swap", "garbage"])
async def test_book_survives_gaps_reordering_and_garbage(venue: Venue, fault: str) -> None:
    rng = random.Random(fault)
    call = venue.stub.StreamOrderBook(book_request(depth=20))
    notices: list[int] = []
    await read_until(call, lambda m: True, notices)
    await venue.streams.server.wait_until(
        lambda: venue.streams.server.subscribers("btcusdt@depth@100ms") == 1
    )
    for _ in range(5):
        await churn(venue, rng, 20)
        setattr(venue.streams.server.faults, fault, 1)
        await churn(venue, rng, 20)
        await read_until(call, book_is(*venue.streams.true_book(SYMBOL, 20)), notices)
    assert GAP in notices and RECOVERED in notices
    # Each fault cost one realigning snapshot (plus the one on connect), no more.
    assert venue.rest.requests[("GET", "/api/v3/depth")] == 1 + 5
    call.cancel()


async def test_book_survives_dropped_connections(venue: Venue) -> None:
    rng = random.Random(7)
    call = venue.stub.StreamOrderBook(book_request())
    notices: list[int] = []
    await read_until(call, lambda m: True, notices)
    server = venue.streams.server
    for _ in range(3):
        await server.wait_until(lambda: server.subscribers("btcusdt@depth@100ms") == 1)
        await churn(venue, rng, 10)
        await read_until(call, book_is(*venue.streams.true_book(SYMBOL, 10)), notices)
        await server.drop_all()
        await churn(venue, rng, 5)  # changes nobody hears: the resync must pick them up
    await server.wait_until(lambda: server.subscribers("btcusdt@depth@100ms") == 1)
    await churn(venue, rng, 3)
    await read_until(call, book_is(*venue.streams.true_book(SYMBOL, 10)), notices)
    assert server.connects == 4
    assert notices.count(GAP) == 3 and notices.count(RECOVERED) == 3
    call.cancel()


async def test_quotes_follow_book_ticker_and_trades(venue: Venue) -> None:
    call = venue.stub.StreamQuotes(
        pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["binance"])
    )
    notices: list[int] = []
    seeded = await read_until(call, lambda m: True, notices)
    assert D(seeded.quote.bid) == D("43000.00")  # from the REST ticker on connect
    server = venue.streams.server
    await server.wait_until(lambda: server.subscribers("btcusdt@bookTicker") == 1)
    await venue.streams.change_book(SYMBOL, bids=[(D("43000.25"), D("3"))])
    await venue.streams.publish_top(SYMBOL)
    moved = await read_until(call, lambda m: m.quote.bid == "43000.25", notices)
    assert D(moved.quote.bid_size) == 3 and D(moved.quote.ask) == D("43001.00")
    await venue.streams.trade(SYMBOL, D("43000.75"), D("0.1"))
    traded = await read_until(call, lambda m: m.quote.last == "43000.75", notices)
    assert D(traded.quote.bid) == D("43000.25")
    assert notices == []
    call.cancel()


async def test_stream_cancel_closes_the_venue_connection_and_tasks(venue: Venue) -> None:
    server = venue.streams.server

    async def subscribe_then_cancel() -> None:
        calls = [venue.stub.StreamOrderBook(book_request()) for _ in range(3)]
        quotes = pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["binance"])
        calls.append(venue.stub.StreamQuotes(quotes))
        for call in calls:
            await read_until(call, lambda m: True, [])
        # Three book subscribers share one venue connection; the quote feed has its own.
        await server.wait_until(lambda: len(server.connections) == 2)
        for call in calls:
            call.cancel()
        await server.wait_until(lambda: len(server.connections) == 0)

    await venue.stub.GetStatus(pb.GetStatusRequest())
    baseline = gateway_tasks()
    await subscribe_then_cancel()
    await subscribe_then_cancel()
    assert server.connects == 4
    await until(lambda: gateway_tasks() <= baseline)


def gateway_tasks() -> int:
    """Tasks on the loop, less the fakes' keep-alive connection handlers (REST calls open
    those on the fake's side and they outlive the streams by design)."""
    return sum("RequestHandler" not in repr(task.get_coro()) for task in asyncio.all_tasks())
