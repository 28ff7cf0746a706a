"""Real mode through gRPC against the local fake Coinbase Exchange."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal as D

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from tests.conftest import make_settings
from tests.fakes.coinbase import API_KEY, API_SECRET, PASSPHRASE, FakeCoinbase, Fault
from tests.helpers import bad_request_fields, error_info, expect_error
from titan_grpc.config import Secret, VenueCredentials, VenueSettings
from titan_grpc.errors import ConfigError
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.coinbase import CoinbaseExchange, auth
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.net import RetryPolicy
from titan_grpc.server import Gateway, start_gateway

FAST_RETRY = RetryPolicy(attempts=3, base_delay_seconds=0.001, max_delay_seconds=0.005)
StubFor = Callable[..., Awaitable[pb_grpc.ExchangeServiceStub]]


def venue(
    url: str, key: str = API_KEY, secret: str = API_SECRET, passphrase: str = PASSPHRASE
) -> VenueSettings:
    return VenueSettings(
        "coinbase", VenueCredentials(Secret(key), Secret(secret), Secret(passphrase)), True, url, ""
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeCoinbase]:
    exchange = FakeCoinbase(max_page=2)  # tiny pages so paging really happens
    await exchange.start()
    try:
        yield exchange
    finally:
        await exchange.stop()


@pytest.fixture
async def stub_for() -> AsyncIterator[StubFor]:
    opened: list[tuple[Gateway, grpc.aio.Channel]] = []

    async def make(
        fake: FakeCoinbase, aliases: tuple[tuple[str, str], ...] = (), **credentials: str
    ) -> pb_grpc.ExchangeServiceStub:
        backend = CoinbaseExchange(
            venue(fake.url, **credentials),
            quote_aliases=aliases,
            retry=FAST_RETRY,
            reconcile_delays=(0.0, 0.01, 0.02),
            total_timeout=1.0,
            rate_limit_max_wait_seconds=0.0,
        )
        world = SimulatedWorld(7)
        backends: dict[str, ExchangeBackend] = {
            "coinbase": backend,
            "mock": SimulatedExchange("mock", world),
        }
        gateway = await start_gateway(
            make_settings(use_real_exchanges=True), world=world, backends=backends
        )
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")
        opened.append((gateway, channel))
        return pb_grpc.ExchangeServiceStub(channel)

    yield make
    for gateway, channel in opened:
        await channel.close()
        await gateway.stop(grace=0.5)


@pytest.fixture
async def stub(fake: FakeCoinbase, stub_for: StubFor) -> pb_grpc.ExchangeServiceStub:
    return await stub_for(fake)


def limit(
    price: str, size: str = "0.01", cid: str = "", symbol: str = "BTC-USD", side: int = pb.SIDE_BUY
) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        exchange="coinbase",
        symbol=symbol,
        side=side,
        type=pb.ORDER_TYPE_LIMIT,
        quantity=size,
        price=price,
        client_order_id=cid,
    )


def market(size: str, cid: str = "") -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        exchange="coinbase",
        symbol="BTC-USD",
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_MARKET,
        quantity=size,
        client_order_id=cid,
    )


async def test_market_data(stub: pb_grpc.ExchangeServiceStub) -> None:
    ticker = (
        await stub.GetMarketData(pb.GetMarketDataRequest(symbol="btc-usd", exchange="coinbase"))
    ).ticker
    assert (ticker.symbol, ticker.venue_symbol, ticker.bid, ticker.ask) == (
        "BTC-USD",
        "BTC-USD",
        "43000",
        "43001",
    )
    assert (ticker.open_24h, ticker.change_percent_24h) == ("42000", "2.38")
    assert not ticker.source.simulated and ticker.source.note == ""
    book = (
        await stub.GetOrderBook(
            pb.GetOrderBookRequest(symbol="BTC-USD", exchange="coinbase", depth=1)
        )
    ).book
    assert ([(b.price, b.quantity) for b in book.bids], book.sequence) == ([("43000", "1")], 4242)
    trades = await stub.GetRecentTrades(
        pb.GetRecentTradesRequest(symbol="BTC-USD", exchange="coinbase")
    )
    # Coinbase reports the maker's side: a "sell" print was a taker buy.
    assert [(t.trade_id, t.side) for t in trades.trades] == [
        ("2", pb.SIDE_BUY),
        ("1", pb.SIDE_SELL),
    ]


async def test_quote_alias_is_opt_in_and_always_labelled(
    fake: FakeCoinbase, stub_for: StubFor
) -> None:
    plain = await stub_for(fake)
    error = await expect_error(
        plain.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="coinbase")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert bad_request_fields(error) == ["symbol"]
    aliased = await stub_for(fake, aliases=(("USDT", "USD"),))
    ticker = (
        await aliased.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="coinbase"))
    ).ticker
    assert (ticker.symbol, ticker.venue_symbol) == ("BTC-USDT", "BTC-USD")
    assert "quote alias USDT->USD" in ticker.source.note
    book = (
        await aliased.GetOrderBook(pb.GetOrderBookRequest(symbol="BTC-USDT", exchange="coinbase"))
    ).book
    assert book.symbol == "BTC-USDT" and "served from BTC-USD" in book.source.note
    # Orders never use an alias: USDT is not USD.
    refused = await expect_error(
        aliased.PlaceOrder(limit("40000", symbol="BTC-USDT")), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert bad_request_fields(refused) == ["symbol"]
    assert fake.requests["POST /orders"] == 0


async def test_orders_balances_fills_and_ledger(
    fake: FakeCoinbase, stub: pb_grpc.ExchangeServiceStub
) -> None:
    balances = (await stub.GetBalances(pb.GetBalancesRequest(exchanges=["coinbase"]))).venues[0]
    assert {(b.asset, b.free, b.locked) for b in balances.balances} == {
        ("USD", "100000", "0"),
        ("BTC", "1", "0"),
    }
    filled = (await stub.PlaceOrder(market("0.8", cid="cb-market-1"))).order
    assert (filled.status, filled.client_order_id) == (pb.ORDER_STATUS_FILLED, "cb-market-1")
    assert D(filled.filled_quote_quantity) == D("0.5") * 43001 + D("0.3") * 43003
    resting = (await stub.PlaceOrder(limit("40000", cid="cb-rest-1"))).order
    assert resting.status == pb.ORDER_STATUS_NEW
    assert fake.orders_per_client_oid()[auth.venue_client_oid("cb-rest-1")] == 1
    by_client = (
        await stub.GetOrderStatus(
            pb.GetOrderStatusRequest(exchange="coinbase", client_order_id="cb-rest-1")
        )
    ).order
    assert by_client.order_id == resting.order_id and by_client.client_order_id == "cb-rest-1"
    cancelled = (
        await stub.CancelOrder(
            pb.CancelOrderRequest(exchange="coinbase", client_order_id="cb-rest-1")
        )
    ).order
    assert cancelled.status == pb.ORDER_STATUS_CANCELED
    again = await expect_error(
        stub.CancelOrder(pb.CancelOrderRequest(exchange="coinbase", order_id=filled.order_id)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "already filled" in (again.details() or "")
    fills = await stub.ListTrades(
        pb.ListTradesRequest(exchange="coinbase", symbol="BTC-USD", limit=10)
    )
    assert [f.price for f in fills.trades] == ["43003", "43001"]  # two pages of at most 2
    ledger = await stub.ListLedgerEntries(
        pb.ListLedgerEntriesRequest(exchange="coinbase", asset="USD", limit=3)
    )
    assert [e.type for e in ledger.entries] == [
        pb.LEDGER_ENTRY_TYPE_FEE,
        pb.LEDGER_ENTRY_TYPE_TRADE,
        pb.LEDGER_ENTRY_TYPE_FEE,
    ]
    assert fake.requests["GET /accounts/{id}/ledger"] == 2
    no_asset = await expect_error(
        stub.ListLedgerEntries(pb.ListLedgerEntriesRequest(exchange="coinbase")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert bad_request_fields(no_asset) == ["asset"]


async def test_errors_keep_the_venue_message(
    fake: FakeCoinbase, stub: pb_grpc.ExchangeServiceStub, stub_for: StubFor
) -> None:
    poor = await expect_error(stub.PlaceOrder(market("5")), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_info(poor).metadata["venue_message"] == "Insufficient funds"
    missing = await expect_error(
        stub.GetOrderStatus(
            pb.GetOrderStatusRequest(exchange="coinbase", order_id="no-such-order")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert error_info(missing).metadata["venue_message"] == "NotFound"
    off_tick = await expect_error(
        stub.PlaceOrder(limit("40000.001")), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert bad_request_fields(off_tick) == ["price"]
    wrong_secret = await stub_for(fake, secret="d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=")
    answer = await wrong_secret.GetBalances(pb.GetBalancesRequest(exchanges=["coinbase"]))
    assert (answer.errors[0].code, answer.errors[0].venue_code) == ("UNAUTHENTICATED", "401")
    assert "invalid signature" in answer.errors[0].message
    wrong_pass = await stub_for(fake, passphrase="nope")
    denied = await expect_error(
        wrong_pass.PlaceOrder(limit("40000")), grpc.StatusCode.UNAUTHENTICATED
    )
    assert error_info(denied).metadata["venue_message"] == "Invalid Passphrase"
    # One at start-up (the account's fees), one for GetBalances: a 401 is never retried.
    assert fake.rejections["invalid signature"] == 2


async def test_clock_offset_is_tracked(fake: FakeCoinbase, stub_for: StubFor) -> None:
    fake.clock_offset = 120.0  # venue clock two minutes ahead: a raw timestamp would fail
    # Start-up already signs a request (the account's fees): the offset is learnt then.
    stub = await stub_for(fake)
    answer = await stub.GetBalances(pb.GetBalancesRequest(exchanges=["coinbase"]))
    assert not answer.errors and fake.rejections["request timestamp expired"] == 0


async def test_rate_limits_are_respected_and_429_maps(
    fake: FakeCoinbase, stub: pb_grpc.ExchangeServiceStub
) -> None:
    request = pb.GetOrderBookRequest(
        symbol="BTC-USD", exchange="coinbase", max_age=Duration(seconds=10)
    )
    outcomes = await asyncio.gather(*(stub.GetOrderBook(request) for _ in range(40)))
    assert len(outcomes) == 40
    assert fake.requests["GET /products/{id}/book"] == 1  # forty callers, one venue request
    fresh = pb.GetOrderBookRequest(
        symbol="BTC-USD", exchange="coinbase", max_age=Duration(seconds=0)
    )
    outcomes = await asyncio.gather(
        *(stub.GetOrderBook(fresh) for _ in range(40)), return_exceptions=True
    )
    # Concurrent callers still share one request; sequential fresh reads spend the bucket.
    for _ in range(40):
        try:
            await stub.GetOrderBook(fresh)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            break
    else:
        raise AssertionError("the local bucket never refused a fresh read")
    assert fake.rate_limited == 0  # the local bucket held the burst back


async def test_ambiguous_placement_is_reconciled_by_client_oid(
    fake: FakeCoinbase, stub: pb_grpc.ExchangeServiceStub
) -> None:
    fake.inject("POST /orders", Fault("5xx_after_accept"))
    order = (await stub.PlaceOrder(limit("40000", cid="cb-amb-1"))).order
    assert (order.client_order_id, order.status) == ("cb-amb-1", pb.ORDER_STATUS_NEW)
    assert fake.requests["POST /orders"] == 1 and len(fake.orders) == 1
    fake.inject("POST /orders", Fault("5xx"))
    error = await expect_error(
        stub.PlaceOrder(limit("40000", cid="cb-amb-2")), grpc.StatusCode.UNAVAILABLE
    )
    assert error_info(error).reason == "AMBIGUOUS_OUTCOME"
    assert fake.requests["POST /orders"] == 2 and len(fake.orders) == 1


async def test_keyless_reads_work_and_private_calls_name_the_variable(
    fake: FakeCoinbase, stub_for: StubFor
) -> None:
    keyless = await stub_for(fake, key="", secret="", passphrase="")
    assert (
        await keyless.GetMarketData(pb.GetMarketDataRequest(symbol="ETH-BTC", exchange="coinbase"))
    ).ticker.bid
    error = await expect_error(
        keyless.PlaceOrder(limit("40000")), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert error_info(error).metadata["variable"] == "COINBASE_API_KEY"


@pytest.mark.parametrize(
    ("credentials", "variable"),
    [
        ({"passphrase": ""}, "COINBASE_PASSPHRASE"),
        ({"secret": "not base64 !!"}, "COINBASE_API_SECRET"),
        ({"key": "k"}, "COINBASE_API_KEY"),
    ],
)
def test_malformed_credentials_stop_start_up(credentials: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CoinbaseExchange(venue("http://127.0.0.1:9", **credentials))
    assert [p.split(":")[0] for p in caught.value.problems] == [variable]
