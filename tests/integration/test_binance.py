"""Real mode through gRPC against the local fake Binance (which checks every request)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal as D

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.conftest import make_settings
from tests.fakes.binance import API_KEY, API_SECRET, FakeBinance, Fault
from tests.helpers import bad_request_fields, error_info, expect_error
from titan_grpc.config import Secret, Settings, VenueCredentials, VenueSettings
from titan_grpc.errors import ConfigError
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.binance import BinanceExchange
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.net import RetryPolicy
from titan_grpc.server import Gateway, start_gateway

FAST_RETRY = RetryPolicy(attempts=3, base_delay_seconds=0.001, max_delay_seconds=0.005)
ORDER_POST = ("POST", "/api/v3/order")


def venue_settings(url: str, key: str = API_KEY, secret: str = API_SECRET) -> VenueSettings:
    return VenueSettings(
        "binance",
        VenueCredentials(Secret(key), Secret(secret)),
        testnet=True,
        base_url=url,
        ws_url="",
    )


# A closed loopback port: real-mode venues under test never reach the internet.
UNREACHABLE = "http://127.0.0.1:9"


def real_settings(url: str, **venue: str) -> Settings:
    return replace(
        make_settings(use_real_exchanges=True),
        binance=venue_settings(url, **venue),
        coinbase=VenueSettings("coinbase", VenueCredentials(), True, UNREACHABLE, ""),
        kucoin=VenueSettings("kucoin", VenueCredentials(), True, UNREACHABLE, ""),
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    venue = FakeBinance()
    await venue.start()
    try:
        yield venue
    finally:
        await venue.stop()


def adapter(fake: FakeBinance, **options: object) -> BinanceExchange:
    settings = venue_settings(
        fake.url, **{k: v for k, v in options.items() if k in ("key", "secret")}
    )  # type: ignore[arg-type]
    tuning = {k: v for k, v in options.items() if k not in ("key", "secret")}
    tuning.setdefault("retry", FAST_RETRY)
    tuning.setdefault("reconcile_delays", (0.0, 0.01, 0.02))
    tuning.setdefault("total_timeout", 1.0)
    return BinanceExchange(settings, **tuning)  # type: ignore[arg-type]


async def serve(backend: BinanceExchange) -> Gateway:
    world = SimulatedWorld(7)
    backends: dict[str, ExchangeBackend] = {
        "binance": backend,
        "mock": SimulatedExchange("mock", world),
    }
    return await start_gateway(
        make_settings(use_real_exchanges=True), world=world, backends=backends
    )


@pytest.fixture
async def stub_for() -> AsyncIterator[object]:
    opened: list[tuple[Gateway, grpc.aio.Channel]] = []

    async def make(backend: BinanceExchange) -> pb_grpc.ExchangeServiceStub:
        gateway = await serve(backend)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")
        opened.append((gateway, channel))
        return pb_grpc.ExchangeServiceStub(channel)

    yield make
    for gateway, channel in opened:
        await channel.close()
        await gateway.stop(grace=0.5)


@pytest.fixture
async def stub(fake: FakeBinance, stub_for: object) -> pb_grpc.ExchangeServiceStub:
    return await stub_for(adapter(fake))  # type: ignore[operator, no-any-return]


def market_order(quantity: str = "0.7", client_order_id: str = "") -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        exchange="binance",
        symbol="BTC-USDT",
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_MARKET,
        quantity=quantity,
        client_order_id=client_order_id,
    )


def limit_order(
    price: str, quantity: str = "0.01", client_order_id: str = ""
) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        exchange="binance",
        symbol="BTC-USDT",
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_LIMIT,
        quantity=quantity,
        price=price,
        client_order_id=client_order_id,
    )


async def test_settings_path_builds_binance_from_base_url(fake: FakeBinance) -> None:
    gateway = await start_gateway(real_settings(fake.url))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            status = await stub.GetStatus(pb.GetStatusRequest())
            assert status.mode == pb.MODE_REAL
            assert [(v.exchange, v.simulated) for v in status.venues] == [
                ("binance", False),
                ("coinbase", False),
                ("kucoin", False),
                ("mock", True),
            ]
            assert status.venues[1].market_count == 0  # unreachable venue: reported, not fatal
            assert status.venues[0].market_count == 2 and status.venues[0].credentials_configured
            ticker = (
                await stub.GetMarketData(
                    pb.GetMarketDataRequest(symbol="BTCUSDT", exchange="binance")
                )
            ).ticker
            assert (ticker.bid, ticker.ask, ticker.venue_symbol) == ("43000", "43001", "BTCUSDT")
            assert ticker.source.simulated is False and ticker.source.exchange == "binance"
    finally:
        await gateway.stop(grace=0.5)


async def test_market_data_book_and_trades(stub: pb_grpc.ExchangeServiceStub) -> None:
    book = (
        await stub.GetOrderBook(
            pb.GetOrderBookRequest(symbol="BTC-USDT", exchange="binance", depth=2)
        )
    ).book
    assert [(lvl.price, lvl.quantity) for lvl in book.asks] == [("43001", "0.5"), ("43002", "1")]
    assert book.sequence == 777 and not book.source.simulated
    trades = await stub.GetRecentTrades(
        pb.GetRecentTradesRequest(symbol="BTC-USDT", exchange="binance", limit=2)
    )
    assert [(t.trade_id, t.side) for t in trades.trades] == [
        ("2", pb.SIDE_BUY),
        ("1", pb.SIDE_SELL),
    ]


async def test_connections_auth_and_balances(stub: pb_grpc.ExchangeServiceStub) -> None:
    connection = (
        await stub.TestConnections(pb.TestConnectionsRequest(exchanges=["binance"]))
    ).results[0]
    assert connection.ok and not connection.simulated and connection.HasField("venue_time")
    auth = (await stub.TestAuth(pb.TestAuthRequest(exchanges=["binance"]))).results[0]
    assert auth.ok and set(auth.permissions) == {"spot", "trade"}
    balances = await stub.GetBalances(pb.GetBalancesRequest(exchanges=["binance"]))
    (venue,) = balances.venues
    assert not venue.simulated
    assert {(b.asset, b.free) for b in venue.balances} == {
        ("USDT", "100000"),
        ("BTC", "2"),
    }  # zero ETH omitted


async def test_place_query_cancel_and_list_trades(
    fake: FakeBinance, stub: pb_grpc.ExchangeServiceStub
) -> None:
    filled = (await stub.PlaceOrder(market_order("0.7", "mkt-7"))).order
    assert (filled.status, filled.client_order_id, filled.simulated) == (
        pb.ORDER_STATUS_FILLED,
        "mkt-7",
        False,
    )
    # 0.5 @ 43001 + 0.2 @ 43002, 0.1 % taker fee per fill
    assert D(filled.filled_quote_quantity) == D("30100.9")
    assert D(filled.fee) == D("30.1009") and filled.fee_asset == "USDT"
    resting = (await stub.PlaceOrder(limit_order("40000", client_order_id="rest-1"))).order
    assert resting.status == pb.ORDER_STATUS_NEW
    queried = (
        await stub.GetOrderStatus(
            pb.GetOrderStatusRequest(
                exchange="binance", symbol="BTC-USDT", client_order_id="rest-1"
            )
        )
    ).order
    assert queried.order_id == resting.order_id and queried.fee == ""  # venue did not report it
    cancelled = (
        await stub.CancelOrder(
            pb.CancelOrderRequest(exchange="binance", symbol="BTC-USDT", order_id=resting.order_id)
        )
    ).order
    assert cancelled.status == pb.ORDER_STATUS_CANCELED
    again = await expect_error(
        stub.CancelOrder(
            pb.CancelOrderRequest(exchange="binance", symbol="BTC-USDT", order_id=filled.order_id)
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "already filled" in (again.details() or "")
    trades = await stub.ListTrades(pb.ListTradesRequest(exchange="binance", symbol="BTC-USDT"))
    assert [t.price for t in trades.trades] == ["43002", "43001"]  # newest first
    assert fake.rejections[-1022] == 0 and fake.rejections[-1021] == 0


async def test_filter_violations_never_reach_the_venue(
    fake: FakeBinance, stub: pb_grpc.ExchangeServiceStub
) -> None:
    for request, field in (
        (limit_order("40000.005"), "price"),
        (limit_order("40000", quantity="0.000001"), "quantity"),
        (limit_order("40000", quantity="0.0001"), "quantity"),  # 4 USDT < 5 minimum notional
        (market_order("0.0001"), "quantity"),
    ):
        error = await expect_error(stub.PlaceOrder(request), grpc.StatusCode.INVALID_ARGUMENT)
        assert bad_request_fields(error) == [field]
    assert fake.requests[ORDER_POST] == 0


async def test_venue_rejections_keep_code_and_message(
    fake: FakeBinance, stub: pb_grpc.ExchangeServiceStub
) -> None:
    poor = await expect_error(
        stub.PlaceOrder(market_order("5")), grpc.StatusCode.FAILED_PRECONDITION
    )
    info = error_info(poor)
    assert (info.reason, info.metadata["venue_code"]) == ("INSUFFICIENT_FUNDS", "-2010")
    assert "insufficient balance" in info.metadata["venue_message"]
    missing = await expect_error(
        stub.GetOrderStatus(
            pb.GetOrderStatusRequest(exchange="binance", symbol="BTC-USDT", order_id="424242")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert error_info(missing).metadata["venue_code"] == "-2013"
    needs_symbol = await expect_error(
        stub.GetOrderStatus(pb.GetOrderStatusRequest(exchange="binance", order_id="1")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert bad_request_fields(needs_symbol) == ["symbol"]
    ledger = await expect_error(
        stub.ListLedgerEntries(pb.ListLedgerEntriesRequest(exchange="binance")),
        grpc.StatusCode.UNIMPLEMENTED,
    )
    assert "ListTrades" in (ledger.details() or "")


async def test_bad_signature_and_bad_key_are_unauthenticated(
    fake: FakeBinance, stub_for: object
) -> None:
    wrong_secret = await stub_for(adapter(fake, secret="w" * 64))  # type: ignore[operator]
    error = await expect_error(
        wrong_secret.PlaceOrder(limit_order("40000")), grpc.StatusCode.UNAUTHENTICATED
    )
    assert error_info(error).metadata["venue_code"] == "-1022"
    wrong_key = await stub_for(adapter(fake, key="k" * 64))  # type: ignore[operator]
    error = await expect_error(
        wrong_key.PlaceOrder(limit_order("40000")), grpc.StatusCode.UNAUTHENTICATED
    )
    assert error_info(error).metadata["venue_code"] == "-2015"
    assert fake.orders_created == 0


async def test_missing_keys_fail_precondition_but_market_data_works(
    fake: FakeBinance, stub_for: object
) -> None:
    keyless = await stub_for(adapter(fake, key="", secret=""))  # type: ignore[operator]
    ticker = await keyless.GetMarketData(
        pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance")
    )
    assert ticker.ticker.bid == "43000"
    error = await expect_error(
        keyless.PlaceOrder(limit_order("40000")), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "BINANCE_API_KEY" in (error.details() or "")
    assert error_info(error).metadata["variable"] == "BINANCE_API_KEY"
    balances = await keyless.GetBalances(pb.GetBalancesRequest(exchanges=["binance"]))
    assert balances.errors[0].code == "FAILED_PRECONDITION"


async def test_clock_offset_is_tracked_and_a_1021_resyncs_once(
    fake: FakeBinance, stub_for: object
) -> None:
    fake.clock_offset_ms = 30_000  # venue clock 30 s ahead of ours
    # Start-up already signs a request (the account's fees): the offset is learnt then.
    stub = await stub_for(adapter(fake))  # type: ignore[operator]
    await stub.GetBalances(pb.GetBalancesRequest(exchanges=["binance"]))
    assert fake.rejections[-1021] == 0
    fake.clock_offset_ms = -20_000  # the venue's clock jumps: our offset is now stale
    answer = await stub.GetBalances(pb.GetBalancesRequest(exchanges=["binance"]))
    assert not answer.errors
    assert fake.rejections[-1021] == 1  # rejected once, resynced, accepted


async def test_burst_never_exceeds_the_weight_budget(stub_for: object) -> None:
    venue = FakeBinance(weight_limit=120)
    await venue.start()
    try:
        stub = await stub_for(adapter(venue, rate_limit_max_wait_seconds=0.0))  # type: ignore[operator]
        request = pb.GetMarketDataRequest(
            symbol="BTC-USDT", exchange="binance", max_age=Duration(seconds=10)
        )
        outcomes = await asyncio.gather(*(stub.GetMarketData(request) for _ in range(80)))
        assert len(outcomes) == 80
        assert venue.requests[("GET", "/api/v3/ticker/24hr")] == 1  # one shared request
        # Callers who insist on data fresh from the venue spend the budget, then are refused.
        fresh = pb.GetMarketDataRequest(
            symbol="BTC-USDT", exchange="binance", max_age=Duration(seconds=0)
        )
        refused: grpc.aio.AioRpcError | None = None
        for _ in range(80):
            try:
                await stub.GetMarketData(fresh)
            except grpc.aio.AioRpcError as error:
                refused = error
                break
        assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # exchangeInfo (20) + 2 per ticker must fit in 120, unless a minute boundary passed.
        assert venue.requests[("GET", "/api/v3/ticker/24hr")] <= 100
        assert venue.rate_limited == 0  # the venue never had to say 429
        status = rpc_status.from_call(refused)  # type: ignore[arg-type]
        assert status is not None
        assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    finally:
        await venue.stop()


async def test_venue_429_blocks_further_requests_until_retry_after(
    fake: FakeBinance, stub: pb_grpc.ExchangeServiceStub
) -> None:
    await stub.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance"))
    fake._weight_used = fake.weight_limit  # another client on our IP spent the budget
    fresh = pb.GetMarketDataRequest(
        symbol="BTC-USDT", exchange="binance", max_age=Duration(seconds=0)
    )
    first = await expect_error(
        stub.GetMarketData(fresh),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert error_info(first).metadata["venue_code"] == "-1003"
    sent = sum(fake.requests.values())
    await expect_error(
        stub.GetOrderBook(pb.GetOrderBookRequest(symbol="BTC-USDT", exchange="binance")),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert sum(fake.requests.values()) == sent  # blocked locally: no 418 ban risked
    assert fake.rate_limited == 1


async def test_idempotent_reads_are_retried_on_5xx(
    fake: FakeBinance, stub: pb_grpc.ExchangeServiceStub
) -> None:
    await stub.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance"))
    fake.inject("GET", "/api/v3/ticker/24hr", Fault("5xx"), Fault("5xx"))
    answer = await stub.GetMarketData(
        pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance")
    )
    assert answer.ticker.bid == "43000"
    assert fake.requests[("GET", "/api/v3/ticker/24hr")] == 4
    fake.inject("GET", "/api/v3/depth", Fault("malformed"))
    await expect_error(
        stub.GetOrderBook(pb.GetOrderBookRequest(symbol="BTC-USDT", exchange="binance")),
        grpc.StatusCode.UNAVAILABLE,
    )


@pytest.mark.parametrize("fault", [Fault("timeout_after_accept", 1.5), Fault("5xx_after_accept")])
async def test_ambiguous_placement_is_reconciled_not_resent(
    fake: FakeBinance, stub: pb_grpc.ExchangeServiceStub, fault: Fault
) -> None:
    fake.inject(*ORDER_POST, fault)
    order = (await stub.PlaceOrder(limit_order("40000", client_order_id="amb-1"))).order
    assert (order.client_order_id, order.status) == ("amb-1", pb.ORDER_STATUS_NEW)
    assert fake.requests[ORDER_POST] == 1 and fake.orders_created == 1
    assert fake.requests[("GET", "/api/v3/order")] >= 1


async def test_placement_that_never_executed_stays_ambiguous_and_is_not_resent(
    fake: FakeBinance, stub: pb_grpc.ExchangeServiceStub
) -> None:
    fake.inject(*ORDER_POST, Fault("5xx"))
    error = await expect_error(
        stub.PlaceOrder(limit_order("40000", client_order_id="amb-2")), grpc.StatusCode.UNAVAILABLE
    )
    assert error_info(error).reason == "AMBIGUOUS_OUTCOME"
    assert "amb-2" in (error.details() or "")
    assert fake.requests[ORDER_POST] == 1 and fake.orders_created == 0


@pytest.mark.parametrize(
    ("key", "secret", "variable"),
    [
        ("short", API_SECRET, "BINANCE_API_KEY"),
        (API_KEY, "has spaces in it which no key does", "BINANCE_API_SECRET"),
        (API_KEY, "", "BINANCE_API_SECRET"),
    ],
)
async def test_malformed_keys_stop_start_up_without_echoing_them(
    key: str, secret: str, variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        await start_gateway(real_settings("http://127.0.0.1:9", key=key, secret=secret))
    assert [p.split(":")[0] for p in caught.value.problems] == [variable]
    assert all(value not in str(caught.value) for value in (key, secret) if value)
