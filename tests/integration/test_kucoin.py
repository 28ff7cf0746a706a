"""Real mode through gRPC against the local fake KuCoin."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from decimal import Decimal as D

import grpc
import pytest

from tests.conftest import make_settings
from tests.fakes.kucoin import API_KEY, API_SECRET, PASSPHRASE, FakeKucoin, Fault
from tests.helpers import bad_request_fields, error_info, expect_error
from titan_grpc.config import Secret, VenueCredentials, VenueSettings, load_settings
from titan_grpc.errors import ConfigError
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.kucoin import KucoinExchange
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.net import RetryPolicy
from titan_grpc.server import Gateway, start_gateway

FAST_RETRY = RetryPolicy(attempts=3, base_delay_seconds=0.001, max_delay_seconds=0.005)
StubFor = Callable[..., Awaitable[pb_grpc.ExchangeServiceStub]]


def venue(
    url: str, *, sandbox: bool = False, explicit: bool = True, **credentials: str
) -> VenueSettings:
    keys = {"key": API_KEY, "secret": API_SECRET, "passphrase": PASSPHRASE, **credentials}
    return VenueSettings(
        "kucoin",
        VenueCredentials(Secret(keys["key"]), Secret(keys["secret"]), Secret(keys["passphrase"])),
        testnet=sandbox,
        base_url=url,
        ws_url="",
        testnet_explicit=explicit,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeKucoin]:
    exchange = FakeKucoin(page_size_cap=1)
    await exchange.start()
    try:
        yield exchange
    finally:
        await exchange.stop()


@pytest.fixture
async def stub_for() -> AsyncIterator[StubFor]:
    opened: list[tuple[Gateway, grpc.aio.Channel]] = []

    async def make(settings: VenueSettings) -> pb_grpc.ExchangeServiceStub:
        backend = KucoinExchange(
            settings, retry=FAST_RETRY, reconcile_delays=(0.0, 0.01), total_timeout=1.0
        )
        world = SimulatedWorld(7)
        backends: dict[str, ExchangeBackend] = {
            "kucoin": backend,
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
async def stub(fake: FakeKucoin, stub_for: StubFor) -> pb_grpc.ExchangeServiceStub:
    return await stub_for(venue(fake.url))


def order(price: str | None, size: str = "0.01", cid: str = "") -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        exchange="kucoin",
        symbol="BTC-USDT",
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_LIMIT if price else pb.ORDER_TYPE_MARKET,
        quantity=size,
        price=price or "",
        client_order_id=cid,
    )


async def test_market_data(stub: pb_grpc.ExchangeServiceStub) -> None:
    ticker = (
        await stub.GetMarketData(pb.GetMarketDataRequest(symbol="BTCUSDT", exchange="kucoin"))
    ).ticker
    assert (ticker.bid, ticker.bid_size, ticker.ask, ticker.ask_size) == (
        "43000",
        "1",
        "43000.5",
        "0.4",
    )
    assert (ticker.last, ticker.open_24h, ticker.change_percent_24h) == ("43000", "42470", "1.25")
    assert (ticker.volume_24h, ticker.quote_volume_24h) == ("812.5", "34937500")
    book = (
        await stub.GetOrderBook(
            pb.GetOrderBookRequest(symbol="BTC-USDT", exchange="kucoin", depth=1)
        )
    ).book
    assert ([(a.price, a.quantity) for a in book.asks], book.sequence) == (
        [("43000.5", "0.4")],
        31337,
    )
    trades = await stub.GetRecentTrades(
        pb.GetRecentTradesRequest(symbol="BTC-USDT", exchange="kucoin")
    )
    assert [(t.trade_id, t.side) for t in trades.trades] == [
        ("2", pb.SIDE_BUY),
        ("1", pb.SIDE_SELL),
    ]
    assert trades.trades[0].time.ToDatetime().year >= 2026  # nanosecond stamps understood


async def test_orders_balances_fills_and_paged_ledger(
    fake: FakeKucoin, stub: pb_grpc.ExchangeServiceStub
) -> None:
    filled = (await stub.PlaceOrder(order(None, "0.5", cid="kc-mkt-1"))).order
    assert (filled.status, filled.client_order_id) == (pb.ORDER_STATUS_FILLED, "kc-mkt-1")
    assert D(filled.filled_quote_quantity) == D("0.4") * D("43000.5") + D("0.1") * 43001
    resting = (await stub.PlaceOrder(order("40000", cid="kc-rest-1"))).order
    assert resting.status == pb.ORDER_STATUS_NEW
    queried = (
        await stub.GetOrderStatus(
            pb.GetOrderStatusRequest(
                exchange="kucoin", symbol="BTC-USDT", client_order_id="kc-rest-1"
            )
        )
    ).order
    assert queried.order_id == resting.order_id
    cancelled = (
        await stub.CancelOrder(
            pb.CancelOrderRequest(exchange="kucoin", symbol="BTC-USDT", order_id=resting.order_id)
        )
    ).order
    assert cancelled.status == pb.ORDER_STATUS_CANCELED
    balances = (await stub.GetBalances(pb.GetBalancesRequest(exchanges=["kucoin"]))).venues[0]
    assert {b.asset: b.locked for b in balances.balances} == {"USDT": "0", "BTC": "0"}
    fills = await stub.ListTrades(pb.ListTradesRequest(exchange="kucoin", symbol="BTC-USDT"))
    assert [f.price for f in fills.trades] == ["43001", "43000.5"]
    ledger = await stub.ListLedgerEntries(
        pb.ListLedgerEntriesRequest(exchange="kucoin", asset="USDT")
    )
    assert len(ledger.entries) == 2 and all(D(e.amount) < 0 for e in ledger.entries)
    assert fake.requests["GET /api/v1/accounts/ledgers"] == 2  # one entry per page


async def test_errors_inside_http_200_are_unwrapped_and_mapped(
    fake: FakeKucoin, stub: pb_grpc.ExchangeServiceStub
) -> None:
    poor = await expect_error(
        stub.PlaceOrder(order("40000", size="5")), grpc.StatusCode.FAILED_PRECONDITION
    )
    info = error_info(poor)
    assert (info.reason, info.metadata["venue_code"], info.metadata["venue_message"]) == (
        "INSUFFICIENT_FUNDS",
        "200004",
        "Balance insufficient!",
    )
    missing = await expect_error(
        stub.GetOrderStatus(
            pb.GetOrderStatusRequest(exchange="kucoin", symbol="BTC-USDT", order_id="nope")
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    assert error_info(missing).metadata["venue_code"] == "126043"
    off_step = await expect_error(
        stub.PlaceOrder(order("40000.05")), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert bad_request_fields(off_step) == ["price"]
    assert fake.requests["POST /api/v1/hf/orders"] == 1


async def test_signature_and_passphrase_are_checked(fake: FakeKucoin, stub_for: StubFor) -> None:
    wrong_secret = await stub_for(venue(fake.url, secret="kc-secret-9999-9999-9999"))
    error = await expect_error(
        wrong_secret.PlaceOrder(order("40000")), grpc.StatusCode.UNAUTHENTICATED
    )
    assert error_info(error).metadata["venue_code"] == "400004"  # the signed passphrase fails first
    wrong_pass = await stub_for(venue(fake.url, passphrase="nope"))
    error = await expect_error(
        wrong_pass.PlaceOrder(order("40000")), grpc.StatusCode.UNAUTHENTICATED
    )
    assert error_info(error).metadata["venue_message"] == "Invalid KC-API-PASSPHRASE"
    fake.clock_offset_ms = 60_000
    good = await stub_for(venue(fake.url))
    assert not (await good.GetBalances(pb.GetBalancesRequest(exchanges=["kucoin"]))).errors
    assert fake.rejections["400005"] == 0 and fake.rejections["400002"] == 0


async def test_pool_limit_429_maps_and_blocks(
    fake: FakeKucoin, stub: pb_grpc.ExchangeServiceStub
) -> None:
    await stub.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="kucoin"))
    fake._used = fake.pool_limit
    error = await expect_error(
        stub.GetOrderBook(pb.GetOrderBookRequest(symbol="BTC-USDT", exchange="kucoin")),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert error_info(error).metadata["venue_code"] == "429000"


async def test_ambiguous_placement_is_reconciled_by_client_oid(
    fake: FakeKucoin, stub: pb_grpc.ExchangeServiceStub
) -> None:
    fake.inject("POST /api/v1/hf/orders", Fault("5xx_after_accept"))
    placed = (await stub.PlaceOrder(order("40000", cid="kc-amb-1"))).order
    assert placed.client_order_id == "kc-amb-1" and placed.status == pb.ORDER_STATUS_NEW
    assert (
        fake.requests["POST /api/v1/hf/orders"] == 1
        and fake.orders_per_client_oid()["kc-amb-1"] == 1
    )


async def test_no_sandbox_rules(fake: FakeKucoin, stub_for: StubFor) -> None:
    with pytest.raises(ConfigError) as caught:
        KucoinExchange(venue(fake.url, sandbox=True, explicit=True))
    assert caught.value.problems[0].startswith("KUCOIN_SANDBOX:")
    read_only = await stub_for(venue(fake.url, sandbox=True, explicit=False))  # left unset
    assert (
        await read_only.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="kucoin"))
    ).ticker.bid
    refused = await expect_error(
        read_only.PlaceOrder(order("40000")), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert error_info(refused).metadata["variable"] == "KUCOIN_SANDBOX"
    assert fake.requests["POST /api/v1/hf/orders"] == 0
    settings = load_settings(
        {"USE_REAL_EXCHANGES": "true", "KUCOIN_SANDBOX": "true"}, env_file=None
    )
    with pytest.raises(ConfigError) as caught:
        await start_gateway(replace(settings, grpc_address="127.0.0.1:0", journal_path=":memory:"))
    assert any(p.startswith("KUCOIN_SANDBOX") for p in caught.value.problems)
