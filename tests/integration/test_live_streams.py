"""Live streams from the venues' WebSocket feeds, through gRPC, for every venue.

Each fake venue keeps a true book and publishes its changes the way the venue does; the
fakes then misbehave (skipped, reordered and garbage frames, dropped connections) and the
book a gRPC subscriber sees must come back to the true book every time, with GAP and
RECOVERED notices around each break.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal as D

import pytest

from tests.fakes.binance import FakeBinance
from tests.fakes.binance_streams import FakeBinanceStreams
from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.coinbase_streams import FakeCoinbaseStreams
from tests.fakes.kucoin import FakeKucoin
from tests.fakes.kucoin_streams import FakeKucoinStreams
from tests.integration import test_binance, test_coinbase, test_kucoin
from tests.integration.test_streams import until
from tests.streaming import LiveVenue, book_is, read_until, serving
from titan_grpc.exchanges.binance import BinanceExchange
from titan_grpc.exchanges.coinbase import CoinbaseExchange
from titan_grpc.exchanges.kucoin import KucoinExchange
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

GAP, RECOVERED = pb.STREAM_NOTICE_KIND_GAP, pb.STREAM_NOTICE_KIND_RECOVERED


async def binance_venue() -> AsyncIterator[LiveVenue]:
    rest = FakeBinance()
    await rest.start()
    streams = FakeBinanceStreams(rest)
    await streams.start()
    settings = replace(test_binance.venue_settings(rest.url), ws_url=streams.server.url)
    adapter = BinanceExchange(settings, retry=test_binance.FAST_RETRY, total_timeout=2.0)

    async def quote(last: D) -> None:
        await streams.publish_top("BTCUSDT")
        await streams.trade("BTCUSDT", last, D("0.1"))

    try:
        async with serving(adapter) as (gateway, stub):
            yield LiveVenue(
                name="binance",
                symbol="BTC-USDT",
                venue_symbol="BTCUSDT",
                mid=D("43000.50"),
                tick=D("0.50"),
                server=streams.server,
                book_topic="btcusdt@depth@100ms",
                quote_topic="btcusdt@bookTicker",
                change_book=lambda bids, asks: streams.change_book("BTCUSDT", bids, asks),
                true_book=lambda depth: streams.true_book("BTCUSDT", depth),
                publish_quote=quote,
                snapshots=lambda: rest.requests[("GET", "/api/v3/depth")],
                gateway=gateway,
                stub=stub,
                fake=streams,
            )
    finally:
        await streams.stop()
        await rest.stop()


FULL_BOOK = "GET /api/v3/market/orderbook/level2"
TOP_100 = "GET /api/v1/market/orderbook/level2_100"


async def kucoin_venue(**credentials: str) -> AsyncIterator[LiveVenue]:
    rest = FakeKucoin()
    await rest.start()
    streams = FakeKucoinStreams(rest)
    await streams.start()
    adapter = KucoinExchange(
        test_kucoin.venue(rest.url, **credentials),
        retry=test_kucoin.FAST_RETRY,
        total_timeout=2.0,
    )
    try:
        async with serving(adapter) as (gateway, stub):
            yield LiveVenue(
                name="kucoin",
                symbol="BTC-USDT",
                venue_symbol="BTC-USDT",
                mid=D("43000.2"),
                tick=D("0.1"),
                server=streams.server,
                book_topic="/market/level2:BTC-USDT",
                quote_topic="/market/ticker:BTC-USDT",
                change_book=lambda bids, asks: streams.change_book("BTC-USDT", bids, asks),
                true_book=lambda depth: streams.true_book("BTC-USDT", depth),
                publish_quote=lambda last: streams.ticker("BTC-USDT", last),
                snapshots=lambda: rest.requests[FULL_BOOK] + rest.requests[TOP_100],
                gateway=gateway,
                stub=stub,
                fake=streams,
            )
    finally:
        await streams.stop()
        await rest.stop()


async def coinbase_venue(idle_timeout: float = 5.0, **credentials: str) -> AsyncIterator[LiveVenue]:
    rest = FakeCoinbase()
    await rest.start()
    streams = FakeCoinbaseStreams(rest)
    await streams.start()
    settings = replace(test_coinbase.venue(rest.url, **credentials), ws_url=streams.server.url)
    adapter = CoinbaseExchange(
        settings,
        retry=test_coinbase.FAST_RETRY,
        total_timeout=2.0,
        ws_idle_timeout_seconds=idle_timeout,
    )
    try:
        async with serving(adapter) as (gateway, stub):
            yield LiveVenue(
                name="coinbase",
                symbol="BTC-USD",
                venue_symbol="BTC-USD",
                mid=D("43000.50"),
                tick=D("0.25"),
                server=streams.server,
                book_topic="level2_batch:BTC-USD",
                quote_topic="ticker:BTC-USD",
                change_book=lambda bids, asks: streams.change_book("BTC-USD", bids, asks),
                true_book=lambda depth: streams.true_book("BTC-USD", depth),
                publish_quote=lambda last: streams.ticker("BTC-USD", last),
                snapshots=lambda: streams.snapshots_sent,
                gateway=gateway,
                stub=stub,
                fake=streams,
            )
    finally:
        await streams.stop()
        await rest.stop()


VENUES = {"binance": binance_venue, "coinbase": coinbase_venue, "kucoin": kucoin_venue}


@pytest.fixture(params=sorted(VENUES))
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[LiveVenue]:
    async for live in VENUES[request.param]():
        yield live


def book_request(venue: LiveVenue, depth: int = 10) -> pb.StreamOrderBookRequest:
    return pb.StreamOrderBookRequest(exchange=venue.name, symbol=venue.symbol, depth=depth)


def quote_request(venue: LiveVenue) -> pb.StreamQuotesRequest:
    return pb.StreamQuotesRequest(symbols=[venue.symbol], exchanges=[venue.name])


async def test_book_follows_the_diff_stream(venue: LiveVenue) -> None:
    call = venue.stub.StreamOrderBook(book_request(venue))
    notices: list[int] = []
    first = await read_until(call, lambda m: True, notices)
    assert first.book.source.exchange == venue.name and not first.book.source.simulated
    await venue.subscribed(venue.book_topic)
    await venue.churn(random.Random(1), 200)
    await read_until(call, book_is(*venue.true_book(10)), notices)
    assert notices == []  # a clean feed never reports a gap
    # One snapshot aligned the book; every later change came from the stream.
    assert venue.snapshots() == 1
    call.cancel()


@pytest.mark.parametrize("fault", ["skip", "swap", "garbage", "mangle"])
async def test_book_survives_gaps_reordering_and_garbage(venue: LiveVenue, fault: str) -> None:
    if venue.name == "coinbase" and fault in ("skip", "swap"):
        pytest.skip(
            "coinbase level2 updates carry no sequence number: a skipped or reordered "
            "update cannot be detected from the data (coinbase/stream.py)"
        )
    rng = random.Random(fault)
    call = venue.stub.StreamOrderBook(book_request(venue, depth=20))
    notices: list[int] = []
    await read_until(call, lambda m: True, notices)
    await venue.subscribed(venue.book_topic)
    for _ in range(5):
        await venue.churn(rng, 20)
        setattr(venue.server.faults, fault, 1)
        await venue.churn(rng, 20)
        await read_until(call, book_is(*venue.true_book(20)), notices)
    assert notices.count(GAP) == 5 and notices.count(RECOVERED) == 5
    # Each fault cost exactly one realigning snapshot (plus the one on connect).
    assert venue.snapshots() == 1 + 5
    if fault == "mangle":  # parsed, found unreadable, counted and skipped
        backend = venue.gateway.registry.resolve(venue.name)
        assert backend.frame_stats.malformed == 5  # type: ignore[attr-defined]
    call.cancel()


async def test_book_survives_dropped_connections(venue: LiveVenue) -> None:
    rng = random.Random(7)
    call = venue.stub.StreamOrderBook(book_request(venue))
    notices: list[int] = []
    await read_until(call, lambda m: True, notices)
    for _ in range(3):
        await venue.subscribed(venue.book_topic)
        await venue.churn(rng, 10)
        await read_until(call, book_is(*venue.true_book(10)), notices)
        await venue.server.drop_all()
        await venue.churn(rng, 5)  # changes nobody hears: the resync must pick them up
    await venue.subscribed(venue.book_topic)
    await venue.churn(rng, 3)
    await read_until(call, book_is(*venue.true_book(10)), notices)
    assert venue.server.connects == 4
    assert notices.count(GAP) == 3 and notices.count(RECOVERED) == 3
    registry = venue.gateway.metrics.registry
    for kind in ("gap", "recovered"):
        labels = {"exchange": venue.name, "kind": kind}
        assert registry.get_sample_value("titan_feed_notices_total", labels) == 3
    call.cancel()


async def test_quotes_follow_the_venue(venue: LiveVenue) -> None:
    call = venue.stub.StreamQuotes(quote_request(venue))
    notices: list[int] = []
    seeded = await read_until(call, lambda m: True, notices)
    (best_bid, _), *_ = venue.true_book(1)[0]
    assert D(seeded.quote.bid) == best_bid  # from the REST ticker on connect
    await venue.subscribed(venue.quote_topic)
    new_bid = venue.mid - venue.tick / 2
    await venue.change_book([(new_bid, D("3"))], [])
    await venue.publish_quote(venue.mid + venue.tick)
    moved = await read_until(call, lambda m: D(m.quote.last) == venue.mid + venue.tick, notices)
    assert (D(moved.quote.bid), D(moved.quote.bid_size)) == (new_bid, 3)
    (best_ask, best_ask_size), *_ = venue.true_book(1)[1]
    assert (D(moved.quote.ask), D(moved.quote.ask_size)) == (best_ask, best_ask_size)
    assert not moved.quote.source.simulated
    await venue.server.drop_all()
    await venue.subscribed(venue.quote_topic)
    await venue.publish_quote(venue.mid)
    await read_until(call, lambda m: D(m.quote.last) == venue.mid, notices)
    assert notices == [GAP, RECOVERED]
    call.cancel()


def gateway_tasks() -> int:
    """Tasks on the loop, less the fakes' keep-alive connection handlers (REST calls open
    those on the fake's side and they outlive the streams by design)."""
    return sum("RequestHandler" not in repr(task.get_coro()) for task in asyncio.all_tasks())


async def test_cancelled_streams_close_the_venue_connection_and_tasks(venue: LiveVenue) -> None:
    server = venue.server

    async def subscribe_then_cancel() -> None:
        calls = [venue.stub.StreamOrderBook(book_request(venue)) for _ in range(3)]
        calls.append(venue.stub.StreamQuotes(quote_request(venue)))
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


async def test_deadline_ends_the_stream_and_its_venue_connection(venue: LiveVenue) -> None:
    call = venue.stub.StreamOrderBook(book_request(venue), timeout=1.0)
    await read_until(call, lambda m: True, [])
    await venue.server.wait_until(lambda: len(venue.server.connections) == 0)
    assert (await call.code()).name == "DEADLINE_EXCEEDED"


@pytest.fixture
async def kucoin_live() -> AsyncIterator[LiveVenue]:
    async for live in kucoin_venue():
        yield live


async def test_kucoin_fetches_a_fresh_token_and_pings_as_told(kucoin_live: LiveVenue) -> None:
    venue = kucoin_live
    streams: FakeKucoinStreams = venue.fake
    streams.rest.ping_interval_ms, streams.rest.ping_timeout_ms = 50, 100
    call = venue.stub.StreamOrderBook(book_request(venue))
    notices: list[int] = []
    await read_until(call, lambda m: True, notices)
    # Pings go out every pingInterval and are answered: the connection stays up.
    server = venue.server
    await server.wait_until(
        lambda: sum(f.get("type") == "ping" for f in server.frames_received) >= 3
    )
    assert server.connects == 1
    # A server that stops answering is dropped after interval + timeout, and the
    # reconnect asks bullet-public for a new token first.
    streams.silent = True
    await server.wait_until(lambda: server.connects == 2)
    streams.silent = False
    await read_until(call, lambda m: True, notices)
    assert notices == [GAP, RECOVERED]
    assert streams.rest.requests["POST /api/v1/bullet-public"] == 2
    assert streams.rejected_tokens == 0
    call.cancel()


@pytest.fixture
async def quiet_coinbase() -> AsyncIterator[LiveVenue]:
    async for live in coinbase_venue(idle_timeout=0.3):
        yield live


async def test_coinbase_reconnects_when_heartbeats_stop(quiet_coinbase: LiveVenue) -> None:
    venue = quiet_coinbase
    call = venue.stub.StreamOrderBook(book_request(venue))
    notices: list[int] = []
    await read_until(call, lambda m: True, notices)
    # The fake sends no heartbeats: 0.3 s of silence ends the connection, and the
    # re-subscription brings a fresh snapshot.
    await venue.server.wait_until(lambda: venue.server.connects >= 2)
    await venue.change_book([(venue.mid - venue.tick, D("9"))], [])
    await read_until(call, book_is(*venue.true_book(10)), notices)
    assert notices[:2] == [GAP, RECOVERED]
    call.cancel()


async def test_an_unreachable_venue_feed_is_reported_not_silent() -> None:
    rest = FakeBinance()
    await rest.start()
    settings = replace(test_binance.venue_settings(rest.url), ws_url="ws://127.0.0.1:9")
    adapter = BinanceExchange(settings, retry=test_binance.FAST_RETRY, total_timeout=2.0)
    try:
        async with serving(adapter) as (_, stub):
            for call in (
                stub.StreamOrderBook(
                    pb.StreamOrderBookRequest(exchange="binance", symbol="BTC-USDT")
                ),
                stub.StreamQuotes(
                    pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["binance"])
                ),
            ):
                message = await call.read()
                assert message.notice.kind == GAP, message
                assert "ClientConnectorError" in message.notice.message
                assert message.notice.exchange == "binance"
                call.cancel()
    finally:
        await rest.stop()


def subscribe_frames(venue: LiveVenue) -> list[dict[str, object]]:
    return [f for f in venue.server.frames_received if f.get("type") == "subscribe"]


async def test_coinbase_signs_its_level2_subscription_when_keys_are_set() -> None:
    async for venue in coinbase_venue():
        call = venue.stub.StreamOrderBook(book_request(venue))
        await read_until(call, lambda m: m.HasField("book"), [])
        (frame,) = subscribe_frames(venue)
        assert frame["channels"] == ["level2", "heartbeat"]
        assert venue.fake.signed_subscriptions == 1  # the fake verified the signature
        assert test_coinbase.API_SECRET not in str(frame)  # signed with it, never sent
        call.cancel()


async def test_coinbase_without_keys_uses_the_public_batched_channel() -> None:
    async for venue in coinbase_venue(key="", secret="", passphrase=""):
        call = venue.stub.StreamOrderBook(book_request(venue))
        await read_until(call, lambda m: m.HasField("book"), [])
        (frame,) = subscribe_frames(venue)
        assert frame["channels"] == ["level2_batch", "heartbeat"] and "signature" not in frame
        call.cancel()


async def test_coinbase_refusing_the_signature_is_reported_with_its_reason() -> None:
    wrong_secret = base64.b64encode(b"not the secret the venue knows").decode()
    async for venue in coinbase_venue(secret=wrong_secret):
        call = venue.stub.StreamOrderBook(book_request(venue))
        message = await call.read()
        assert message.notice.kind == GAP
        assert "subscribe refused" in message.notice.message
        assert "invalid signature" in message.notice.message
        assert venue.fake.refused_subscriptions >= 1
        call.cancel()


@pytest.mark.parametrize(
    ("credentials", "snapshot_route"),
    [({}, FULL_BOOK), ({"key": "", "secret": "", "passphrase": ""}, TOP_100)],
    ids=["keys: signed full book", "no keys: top 100"],
)
async def test_kucoin_aligns_from_the_full_book_when_it_may(
    credentials: dict[str, str], snapshot_route: str
) -> None:
    async for venue in kucoin_venue(**credentials):
        call = venue.stub.StreamOrderBook(book_request(venue, depth=50))
        await read_until(call, lambda m: m.HasField("book"), [])
        await venue.subscribed(venue.book_topic)
        await venue.churn(random.Random(3), 30)
        await read_until(call, book_is(*venue.true_book(50)), [])
        requests = venue.fake.rest.requests
        assert requests[snapshot_route] == 1 and requests[FULL_BOOK] + requests[TOP_100] == 1
        assert venue.fake.rest.rejections == {}  # the signed call passed the fake's checks
        call.cancel()
