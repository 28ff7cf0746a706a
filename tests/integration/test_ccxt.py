"""ccxt:binance beside the native binance and a simulated coinbase, both real venues on one
fake Binance (ccxt's URLs overridden through CCXT_BINANCE_OPTIONS): same answers, same
decimals. Selected through TITAN_VENUES, built by the entry-point factories."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from google.protobuf.message import Message

from tests.conftest import make_settings
from tests.fakes.binance import API_KEY, API_SECRET, FakeBinance, Fault
from tests.helpers import error_info, expect_error
from tests.integration.test_binance import venue_settings
from tests.integration.test_order_safety import burst, fault_mix
from titan_grpc.config import Settings, VenueEnvironment, load_settings
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway, start_gateway

pytest.importorskip("ccxt")

from titan_grpc.exchanges.ccxt import load_ccxt_settings
from titan_grpc.exchanges.ccxt.adapter import CcxtExchange

NATIVE, CCXT, SIM = "binance", "ccxt:binance", "coinbase"
ORDER_POST = ("POST", "/api/v3/order")


def ccxt_environment(url: str, **extra: str) -> dict[str, str]:
    options = {
        # The fake serves the spot REST API only: no currency, margin or futures look-ups.
        "options": {
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
            "adjustForTimeDifference": False,
            "fetchTradesMethod": "publicGetTrades",
        },
        "urls": {
            "api": {
                "public": f"{url}/api/v3",
                "private": f"{url}/api/v3",
                "sapi": f"{url}/sapi/v1",  # fetchTradingFees: the account's rates
            }
        },
        "timeout": 1000,
        "rateLimit": 1,  # the fake allows far more than Binance: keep tests quick
    }
    return {
        "CCXT_BINANCE_API_KEY": API_KEY,
        "CCXT_BINANCE_SECRET": API_SECRET,
        "CCXT_BINANCE_OPTIONS": json.dumps(options),
        "CCXT_BINANCE_WATCH": "false",
        "CCXT_BINANCE_POLL_SECONDS": "0.05",
        **extra,
    }


def side_by_side(url: str, **overrides: object) -> Settings:
    """TITAN_VENUES=binance,coinbase=simulated,ccxt:binance with USE_REAL_EXCHANGES=true."""
    loaded = load_settings(
        {
            "USE_REAL_EXCHANGES": "true",
            "TITAN_VENUES": f"{NATIVE},{SIM}=simulated,{CCXT}",
            **ccxt_environment(url),
        },
        env_file=None,
    )
    return replace(
        make_settings(**overrides),
        use_real_exchanges=True,
        venues=loaded.venues,
        venue_environment=loaded.venue_environment,
        binance=venue_settings(url),
    )


def ccxt_backend(url: str) -> CcxtExchange:
    """ccxt:binance on the fake with quick reconciliation, for the order-safety tests."""
    settings = load_ccxt_settings(CCXT, ccxt_environment(url))
    return CcxtExchange(settings, reconcile_delays=(0.0, 0.01, 0.02))


async def safety_gateway(url: str, settle_seconds: float) -> Gateway:
    world = SimulatedWorld(7)
    backends: dict[str, ExchangeBackend] = {
        CCXT: ccxt_backend(url),
        "mock": SimulatedExchange("mock", world),
    }
    settings = make_settings(use_real_exchanges=True, reconcile_settle_seconds=settle_seconds)
    return await start_gateway(settings, world=world, backends=backends)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    venue = FakeBinance(weight_limit=1_000_000, order_limit=1_000_000)
    await venue.start()
    try:
        yield venue
    finally:
        await venue.stop()


@pytest.fixture
async def gateway(fake: FakeBinance) -> AsyncIterator[Gateway]:
    running = await start_gateway(side_by_side(fake.url))
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[pb_grpc.ExchangeServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield pb_grpc.ExchangeServiceStub(channel)


def without(message: Message, *names: str) -> Message:
    copy = type(message)()
    copy.CopyFrom(message)
    for name in names:
        copy.ClearField(name)
    return copy


async def test_three_venues_side_by_side_each_marked(stub: pb_grpc.ExchangeServiceStub) -> None:
    status = await stub.GetStatus(pb.GetStatusRequest())
    assert status.mode == pb.MODE_REAL
    venues = {v.exchange: v for v in status.venues}
    assert list(venues) == [NATIVE, SIM, CCXT, "mock"]
    assert [venues[n].simulated for n in (NATIVE, SIM, CCXT, "mock")] == [
        False,
        True,
        False,
        True,
    ]
    assert venues[CCXT].market_count == venues[NATIVE].market_count == 2
    answers = await stub.GetAggregatedMarketData(
        pb.GetAggregatedMarketDataRequest(symbol="BTC-USDT")
    )
    by_venue = {t.source.exchange: t for t in answers.tickers}
    assert set(by_venue) == {NATIVE, SIM, CCXT}  # "mock" stays out, plugins are in
    assert by_venue[SIM].source.simulated and not by_venue[CCXT].source.simulated
    best = await stub.FindBestPrice(
        pb.FindBestPriceRequest(symbol="BTC-USDT", side=pb.SIDE_BUY, quantity="0.1")
    )
    assert {q.exchange for q in best.quotes} >= {NATIVE, CCXT}


async def test_markets_are_the_same_filters_and_fees(gateway: Gateway) -> None:
    native = await gateway.registry.resolve(NATIVE).markets()
    through_ccxt = await gateway.registry.resolve(CCXT).markets()
    assert set(native) == set(through_ccxt)
    for symbol, market in native.items():
        assert replace(through_ccxt[symbol], exchange=NATIVE) == market


async def test_ticker_book_and_balances_are_the_same_decimals(
    stub: pb_grpc.ExchangeServiceStub,
) -> None:
    tickers = [
        (await stub.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange=v))).ticker
        for v in (NATIVE, CCXT)
    ]
    assert tickers[1].source.exchange == CCXT and not tickers[1].source.simulated
    assert without(tickers[0], "source") == without(tickers[1], "source")
    assert tickers[0].bid == "43000" and tickers[0].quote_volume_24h == "53000000.25"

    books = [
        (
            await stub.GetOrderBook(pb.GetOrderBookRequest(symbol="BTC-USDT", exchange=v, depth=2))
        ).book
        for v in (NATIVE, CCXT)
    ]
    assert without(books[0], "source") == without(books[1], "source")
    assert [(level.price, level.quantity) for level in books[1].bids] == [
        ("43000", "1.5"),
        ("42999.5", "2"),
    ]

    answer = await stub.GetBalances(pb.GetBalancesRequest(exchanges=[NATIVE, CCXT]))
    assert not answer.errors
    native, through_ccxt = (
        [(b.asset, b.free, b.locked) for b in v.balances] for v in answer.venues
    )
    assert native == through_ccxt == [("BTC", "2", "0"), ("USDT", "100000", "0")]


ORDER_TIMES = ("created_time", "updated_time", "exchange", "order_id", "client_order_id")


async def test_a_limit_orders_life_cycle_is_the_same(
    stub: pb_grpc.ExchangeServiceStub, fake: FakeBinance
) -> None:
    answers: dict[str, list[Message]] = {}
    for venue in (NATIVE, CCXT):
        cid = f"life-{venue.replace(':', '-')}"
        placed = (
            await stub.PlaceOrder(
                pb.PlaceOrderRequest(
                    exchange=venue,
                    symbol="BTC-USDT",
                    side=pb.SIDE_BUY,
                    type=pb.ORDER_TYPE_LIMIT,
                    quantity="0.01",
                    price="30000.00",
                    client_order_id=cid,
                )
            )
        ).order
        assert placed.client_order_id == cid
        found = (
            await stub.GetOrderStatus(
                pb.GetOrderStatusRequest(exchange=venue, symbol="BTC-USDT", client_order_id=cid)
            )
        ).order
        cancelled = (
            await stub.CancelOrder(
                pb.CancelOrderRequest(exchange=venue, symbol="BTC-USDT", client_order_id=cid)
            )
        ).order
        again = (  # a repeated cancel answers the cancelled order
            await stub.CancelOrder(
                pb.CancelOrderRequest(exchange=venue, symbol="BTC-USDT", order_id=placed.order_id)
            )
        ).order
        assert placed.order_id == found.order_id == cancelled.order_id == again.order_id
        answers[venue] = [without(o, *ORDER_TIMES) for o in (placed, found, cancelled, again)]
    assert [o.status for o in answers[CCXT]] == [
        pb.ORDER_STATUS_NEW,
        pb.ORDER_STATUS_NEW,
        pb.ORDER_STATUS_CANCELED,
        pb.ORDER_STATUS_CANCELED,
    ]
    assert answers[NATIVE] == answers[CCXT]
    # TITAN's client order id is the id the venue saw, through ccxt too.
    assert fake.orders_per_client_id() == {"life-binance": 1, "life-ccxt-binance": 1}


async def test_fills_are_the_same(stub: pb_grpc.ExchangeServiceStub) -> None:
    fills: dict[str, list[Message]] = {}
    orders: dict[str, Message] = {}
    for venue in (NATIVE, CCXT):
        placed = (
            await stub.PlaceOrder(
                pb.PlaceOrderRequest(
                    exchange=venue,
                    symbol="BTC-USDT",
                    side=pb.SIDE_BUY,
                    type=pb.ORDER_TYPE_LIMIT,
                    quantity="0.1",
                    price="43001.00",
                    client_order_id=f"take-{venue.replace(':', '-')}",
                )
            )
        ).order
        assert placed.status == pb.ORDER_STATUS_FILLED
        orders[venue] = without(placed, *ORDER_TIMES, "fills")
        listed = await stub.ListTrades(
            pb.ListTradesRequest(exchange=venue, symbol="BTC-USDT", order_id=placed.order_id)
        )
        assert not listed.simulated
        fills[venue] = [
            without(f, "trade_id", "order_id", "client_order_id", "time") for f in listed.trades
        ]
    assert orders[NATIVE] == orders[CCXT]
    assert fills[NATIVE] == fills[CCXT]
    assert [(f.price, f.quantity, f.fee, f.fee_asset) for f in fills[CCXT]] == [
        ("43001", "0.1", "4.3001", "USDT")
    ]


async def test_a_missing_capability_is_failed_precondition_naming_venue_and_feature(
    stub: pb_grpc.ExchangeServiceStub, gateway: Gateway
) -> None:
    exchange = gateway.registry.resolve(CCXT).exchange  # type: ignore[attr-defined]
    exchange.has["fetchLedger"] = False
    error = await expect_error(
        stub.ListLedgerEntries(pb.ListLedgerEntriesRequest(exchange=CCXT)),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert error.details() == "ccxt:binance: the venue has no fetchLedger through ccxt"


async def test_quotes_stream_by_polling_where_the_venue_has_no_watch(
    stub: pb_grpc.ExchangeServiceStub,
) -> None:
    stream = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=[CCXT]))
    async for answer in stream:
        if answer.HasField("quote"):
            assert answer.quote.exchange == CCXT and answer.quote.bid == "43000"
            assert not answer.quote.source.simulated
            break
    stream.cancel()
    books = stub.StreamOrderBook(pb.StreamOrderBookRequest(symbol="BTC-USDT", exchange=CCXT))
    async for update in books:
        if update.HasField("book"):
            assert update.book.bids[0].price == "43000"
            break
    books.cancel()


# ---- order safety through ccxt ---------------------------------------------------------


async def test_an_ambiguous_placement_is_reconciled_by_client_id_not_resent(
    stub: pb_grpc.ExchangeServiceStub, fake: FakeBinance
) -> None:
    fake.inject(*ORDER_POST, Fault("5xx_after_accept"))
    placed = (
        await stub.PlaceOrder(
            pb.PlaceOrderRequest(
                exchange=CCXT,
                symbol="BTC-USDT",
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_LIMIT,
                quantity="0.01",
                price="30000",
                client_order_id="amb-1",
            )
        )
    ).order
    assert placed.client_order_id == "amb-1" and placed.status == pb.ORDER_STATUS_NEW
    assert fake.requests[ORDER_POST] == 1
    assert fake.orders_per_client_id() == {"amb-1": 1}


async def test_unknown_outcome_stays_ambiguous_and_is_never_resent(fake: FakeBinance) -> None:
    gateway = await safety_gateway(fake.url, settle_seconds=3600)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            fake.inject(*ORDER_POST, Fault("5xx"))
            request = pb.PlaceOrderRequest(
                exchange=CCXT,
                symbol="BTC-USDT",
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_MARKET,
                quantity="0.001",
                client_order_id="unk-1",
            )
            for _ in range(3):
                error = await expect_error(stub.PlaceOrder(request), grpc.StatusCode.UNAVAILABLE)
                assert error_info(error).reason == "AMBIGUOUS_OUTCOME"
            assert fake.requests[ORDER_POST] == 1
            listed = await stub.ListOrders(pb.ListOrdersRequest(exchange=CCXT))
            assert listed.orders[0].state == pb.JOURNAL_STATE_AMBIGUOUS
    finally:
        await gateway.stop(grace=0.5)


def test_ccxt_settings_problems_name_the_variable() -> None:
    from titan_grpc.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        load_ccxt_settings(
            "ccxt:okx",
            {
                "CCXT_OKX_OPTIONS": "{not json",
                "CCXT_OKX_SANDBOX": "perhaps",
                "CCXT_OKX_API_KEY": "only-the-key-1234",
            },
        )
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "CCXT_OKX_OPTIONS",
        "CCXT_OKX_SANDBOX",
        "CCXT_OKX_API_KEY and CCXT_OKX_SECRET must be set together",
    ]
    assert "only-the-key-1234" not in " ".join(problems)
    assert VenueEnvironment({"CCXT_OKX_SECRET": "s3cr3t"}).__repr__().count("s3cr3t") == 0


async def test_unknown_outcome_is_sent_again_only_after_the_venue_denies_it(
    fake: FakeBinance,
) -> None:
    gateway = await safety_gateway(fake.url, settle_seconds=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            fake.inject(*ORDER_POST, Fault("5xx"))
            request = pb.PlaceOrderRequest(
                exchange=CCXT,
                symbol="BTC-USDT",
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_MARKET,
                quantity="0.001",
                client_order_id="unk-2",
            )
            await expect_error(stub.PlaceOrder(request), grpc.StatusCode.UNAVAILABLE)
            order = (await stub.PlaceOrder(request)).order
            assert order.status == pb.ORDER_STATUS_FILLED
            assert fake.requests[ORDER_POST] == 2
            assert fake.orders_per_client_id()["unk-2"] == 1
    finally:
        await gateway.stop(grace=0.5)


async def test_same_id_in_flight_concurrently_places_one_order(
    stub: pb_grpc.ExchangeServiceStub, fake: FakeBinance
) -> None:
    request = pb.PlaceOrderRequest(
        exchange=CCXT,
        symbol="BTC-USDT",
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_LIMIT,
        quantity="0.01",
        price="30000",
        client_order_id="burst-1",
    )
    answers = await asyncio.gather(*(stub.PlaceOrder(request) for _ in range(25)))
    assert {a.order.order_id for a in answers} == {answers[0].order.order_id}
    assert fake.orders_per_client_id() == {"burst-1": 1}


async def test_retrying_clients_under_faults_leave_one_order_per_id(fake: FakeBinance) -> None:
    """test_order_safety's fault burst (5xx before/after accepting, resets, timeouts past
    ccxt's 1 s timeout), through ccxt: none lost, none duplicated."""
    orders = 300
    rng, faults = fault_mix(seed=orders)
    fake.order_fault_plan = lambda: rng.choice(faults)
    gateway = await safety_gateway(fake.url, settle_seconds=0.2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            ids = [f"burst-{n:05d}" for n in range(orders)]
            placed = await burst(stub, ids, clients=20, exchange=CCXT)
            journal = await gateway.journal.list_entries(limit=orders + 10)
    finally:
        await gateway.stop(grace=0.5)
    per_id = fake.orders_per_client_id()
    assert sorted(placed) == ids  # none lost
    assert set(per_id) == set(ids) and set(per_id.values()) == {1}  # no duplicate
    assert sorted(e.client_order_id for e in journal) == ids
    assert {e.order.order_id for e in journal if e.order} == {str(o) for o in fake.orders}


async def test_rejections_are_the_same(stub: pb_grpc.ExchangeServiceStub) -> None:
    reasons = []
    for venue in (NATIVE, CCXT):
        error = await expect_error(
            stub.PlaceOrder(
                pb.PlaceOrderRequest(
                    exchange=venue,
                    symbol="BTC-USDT",
                    side=pb.SIDE_BUY,
                    type=pb.ORDER_TYPE_LIMIT,
                    quantity="10",
                    price="30000",
                    client_order_id=f"poor-{venue.replace(':', '-')}",
                )
            ),
            grpc.StatusCode.FAILED_PRECONDITION,
        )
        bad_tick = await expect_error(
            stub.PlaceOrder(
                pb.PlaceOrderRequest(
                    exchange=venue,
                    symbol="BTC-USDT",
                    side=pb.SIDE_BUY,
                    type=pb.ORDER_TYPE_LIMIT,
                    quantity="0.01",
                    price="30000.005",
                    client_order_id=f"tick-{venue.replace(':', '-')}",
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        reasons.append((error_info(error).reason, bad_tick.details()))
    assert reasons[0] == reasons[1]
    assert reasons[1][0] == "INSUFFICIENT_FUNDS"


async def test_stop_and_quote_sized_orders_are_refused_through_ccxt_before_sending(
    stub: pb_grpc.ExchangeServiceStub, fake: FakeBinance
) -> None:
    stop = await expect_error(
        stub.PlaceOrder(
            pb.PlaceOrderRequest(
                exchange=CCXT,
                symbol="BTC-USDT",
                side=pb.SIDE_SELL,
                type=pb.ORDER_TYPE_STOP_LIMIT,
                quantity="0.01",
                price="40000",
                stop_price="40100",
                client_order_id="stop-1",
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "ccxt:binance: stop orders are not supported" in (stop.details() or "")
    quote = await expect_error(
        stub.PlaceOrder(
            pb.PlaceOrderRequest(
                exchange=CCXT,
                symbol="BTC-USDT",
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_MARKET,
                quote_quantity="100",
                client_order_id="quote-1",
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "quote_quantity" in (quote.details() or "")
    assert fake.requests[ORDER_POST] == 0
