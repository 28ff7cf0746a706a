"""GetMarkets with the account's fees, ListOpenOrders and CancelAllOrders against the three
fake venues (which sign-check every request) and the simulator, through real gRPC."""

from __future__ import annotations

from decimal import Decimal as D

import aiohttp
import grpc
import pytest

from tests.conftest import make_settings
from tests.fakes.binance import FakeBinance
from tests.trader_venues import TUNING, Venues, venues
from titan_grpc.config import VenueCredentials, VenueSettings
from titan_grpc.exchanges.binance import BinanceExchange
from titan_grpc.exchanges.simulated import SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import start_gateway

__all__ = ["venues"]  # the shared fixture


def by_exchange(markets: list[pb.Market]) -> dict[str, pb.Market]:
    return {market.exchange: market for market in markets}


async def test_markets_report_the_account_fee_tier_of_each_venue(venues: Venues) -> None:
    answer = await venues.stub.GetMarkets(
        pb.GetMarketsRequest(exchanges=["binance", "kucoin", "mock"], symbols=["BTC-USDT"])
    )
    assert not answer.errors
    markets = by_exchange(list(answer.markets))
    assert (markets["binance"].maker_fee_rate, markets["binance"].taker_fee_rate) == (
        "0.00045",
        "0.0006",
    )
    assert (markets["kucoin"].maker_fee_rate, markets["kucoin"].taker_fee_rate) == (
        "0.0002",
        "0.0007",
    )
    for name in ("binance", "kucoin"):
        assert markets[name].fee_source == pb.FEE_SOURCE_ACCOUNT
        assert not markets[name].simulated
    binance_btc = markets["binance"]
    assert (binance_btc.venue_symbol, binance_btc.status) == ("BTCUSDT", pb.MARKET_STATUS_TRADING)
    assert (binance_btc.tick_size, binance_btc.step_size) == ("0.01", "0.00001")
    assert (binance_btc.min_quantity, binance_btc.min_notional) == ("0.00001", "5")
    # The simulator prices with the venue's standard tier and says so.
    assert markets["mock"].fee_source == pb.FEE_SOURCE_DEFAULT and markets["mock"].simulated

    coinbase_markets = await venues.stub.GetMarkets(pb.GetMarketsRequest(exchanges=["coinbase"]))
    usd = by_exchange([m for m in coinbase_markets.markets if m.symbol == "BTC-USD"])["coinbase"]
    assert (usd.maker_fee_rate, usd.taker_fee_rate, usd.fee_source) == (
        "0.0015",
        "0.0025",
        pb.FEE_SOURCE_ACCOUNT,
    )
    assert {m.symbol for m in coinbase_markets.markets} == {"BTC-USD", "ETH-BTC"}


async def test_best_price_uses_the_account_fees(venues: Venues) -> None:
    for exchange, symbol, taker in (
        ("binance", "BTC-USDT", "0.0006"),
        ("kucoin", "BTC-USDT", "0.0007"),
        ("coinbase", "BTC-USD", "0.0025"),
    ):
        answer = await venues.stub.FindBestPrice(
            pb.FindBestPriceRequest(symbol=symbol, side=pb.SIDE_BUY, exchanges=[exchange])
        )
        assert not answer.errors, answer.errors
        quote = answer.best
        assert quote.taker_fee_rate == taker
        assert D(quote.price_after_fees) == D(quote.price) * (1 + D(taker))


async def test_fees_are_refreshed_when_the_tier_changes(venues: Venues) -> None:
    venues.binance.taker_fee = D("0.0004")
    await venues.stub.GetBalances(pb.GetBalancesRequest(exchanges=["binance"]))  # reads /account
    answer = await venues.stub.GetMarkets(
        pb.GetMarketsRequest(exchanges=["binance"], symbols=["BTC-USDT"])
    )
    assert answer.markets[0].taker_fee_rate == "0.0004"


async def test_without_keys_the_default_tier_is_reported() -> None:
    fake = FakeBinance()
    await fake.start()
    world = SimulatedWorld(7)
    backend = BinanceExchange(
        VenueSettings("binance", VenueCredentials(), True, fake.url, ""),
        **TUNING,  # type: ignore[arg-type]
    )
    gateway = await start_gateway(
        make_settings(use_real_exchanges=True), world=world, backends={"binance": backend}
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            answer = await stub.GetMarkets(pb.GetMarketsRequest(symbols=["BTCUSDT"]))
        market = answer.markets[0]
        assert (market.taker_fee_rate, market.fee_source) == ("0.001", pb.FEE_SOURCE_DEFAULT)
        assert fake.requests[("GET", "/api/v3/account")] == 0
    finally:
        await gateway.stop(grace=0.5)
        await fake.stop()


async def test_get_markets_rejects_a_bad_symbol(venues: Venues) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await venues.stub.GetMarkets(pb.GetMarketsRequest(symbols=["not a symbol!"]))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "symbols[0]" in (caught.value.details() or "")


# ---- open orders and the kill switch ---------------------------------------------------


def limit_buy(exchange: str, symbol: str, price: str, cid: str) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        exchange=exchange,
        symbol=symbol,
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_LIMIT,
        quantity="0.01",
        price=price,
        client_order_id=cid,
    )


async def test_binance_open_orders_and_cancel_all(venues: Venues) -> None:
    stub = venues.stub
    await stub.PlaceOrder(limit_buy("binance", "BTC-USDT", "42000", "titan-1"))
    venues.binance.place_directly("BTCUSDT", "BUY", "0.01", "41000.00", "from-the-ui")

    listed = await stub.ListOpenOrders(pb.ListOpenOrdersRequest(exchanges=["binance"]))
    assert not listed.errors
    marks = {order.client_order_id: order.placed_by_gateway for order in listed.orders}
    assert marks == {"titan-1": True, "from-the-ui": False}

    answer = await stub.CancelAllOrders(
        pb.CancelAllOrdersRequest(exchanges=["binance"], symbol="BTC-USDT")
    )
    assert not answer.errors
    (result,) = answer.results
    assert result.bulk and not result.failures
    assert {o.client_order_id for o in result.canceled_orders} == {"titan-1", "from-the-ui"}
    assert all(o.status == pb.ORDER_STATUS_CANCELED for o in result.canceled_orders)
    assert venues.binance.requests[("DELETE", "/api/v3/openOrders")] == 1
    assert all(o["status"] == "CANCELED" for o in venues.binance.orders.values())
    # The journal follows: the gateway's own order is cancelled there too.
    journal = await stub.ListOrders(pb.ListOrdersRequest(exchange="binance"))
    assert journal.orders[0].order.status == pb.ORDER_STATUS_CANCELED
    again = await stub.ListOpenOrders(pb.ListOpenOrdersRequest(exchanges=["binance"]))
    assert not again.orders


async def test_coinbase_cancel_all_uses_the_bulk_delete(venues: Venues) -> None:
    stub = venues.stub
    await stub.PlaceOrder(limit_buy("coinbase", "BTC-USD", "42000", "cb-1"))
    await stub.PlaceOrder(limit_buy("coinbase", "BTC-USD", "41000", "cb-2"))
    listed = await stub.ListOpenOrders(
        pb.ListOpenOrdersRequest(exchanges=["coinbase"], symbol="BTC-USD")
    )
    assert sorted(o.client_order_id for o in listed.orders) == ["cb-1", "cb-2"]
    assert all(o.placed_by_gateway for o in listed.orders)

    answer = await stub.CancelAllOrders(pb.CancelAllOrdersRequest(exchanges=["coinbase"]))
    (result,) = answer.results
    assert result.bulk and len(result.canceled_orders) == 2
    assert venues.coinbase.requests["DELETE /orders"] == 1
    assert all(o["status"] == "done" for o in venues.coinbase.orders.values())


async def test_kucoin_open_orders_of_every_symbol_and_cancel_all(venues: Venues) -> None:
    stub = venues.stub
    await stub.PlaceOrder(limit_buy("kucoin", "BTC-USDT", "42000", "ku-1"))
    # Without a symbol: the venue names the symbols with active orders first.
    listed = await stub.ListOpenOrders(pb.ListOpenOrdersRequest(exchanges=["kucoin"]))
    assert [o.client_order_id for o in listed.orders] == ["ku-1"]
    answer = await stub.CancelAllOrders(pb.CancelAllOrdersRequest(exchanges=["kucoin"]))
    (result,) = answer.results
    assert result.bulk and [o.client_order_id for o in result.canceled_orders] == ["ku-1"]
    assert venues.kucoin.requests["DELETE /api/v1/hf/orders"] == 1
    assert not any(o["active"] for o in venues.kucoin.orders.values())


async def test_simulator_cancels_one_by_one_and_every_venue_answers(venues: Venues) -> None:
    stub = venues.stub
    data = await stub.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="mock"))
    low = str((D(data.ticker.bid) * D("0.9")).quantize(D("0.01")))
    for n in range(3):
        await stub.PlaceOrder(limit_buy("mock", "BTC-USDT", low, f"sim-{n}"))
    (mock,) = (await stub.CancelAllOrders(pb.CancelAllOrdersRequest(exchanges=["mock"]))).results
    assert not mock.bulk and len(mock.canceled_orders) == 3 and mock.simulated
    assert all(o.placed_by_gateway for o in mock.canceled_orders)
    # Everywhere (empty = every venue but "mock"): nothing open, every venue answers.
    answer = await stub.CancelAllOrders(pb.CancelAllOrdersRequest())
    assert not answer.errors
    assert {r.exchange for r in answer.results} == {"binance", "coinbase", "kucoin"}
    assert not any(r.canceled_orders for r in answer.results)


async def test_one_dead_venue_does_not_fail_the_kill_switch(venues: Venues) -> None:
    await venues.kucoin.stop()
    answer = await venues.stub.CancelAllOrders(
        pb.CancelAllOrdersRequest(exchanges=["kucoin", "binance"])
    )
    assert [e.exchange for e in answer.errors] == ["kucoin"]
    assert [r.exchange for r in answer.results] == ["binance"]


async def test_the_new_rpcs_over_http_json() -> None:
    """GET /v1/markets, GET /v1/openOrders and POST /v1/orders:cancelAll (routes from the
    proto's google.api.http annotations) reach the same servicer."""
    world = SimulatedWorld(7)
    gateway = await start_gateway(make_settings(http_address="127.0.0.1:0"), world=world)
    assert gateway.http is not None
    base = f"http://127.0.0.1:{gateway.http.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"{base}/v1/markets", params=[("exchanges", "mock"), ("symbols", "BTC-USDT")]
            ) as answer:
                markets = (await answer.json())["markets"]
            assert markets[0]["feeSource"] == "FEE_SOURCE_DEFAULT"
            order = {
                "exchange": "mock",
                "symbol": "BTC-USDT",
                "side": "SIDE_BUY",
                "type": "ORDER_TYPE_LIMIT",
                "quantity": "0.001",
                "price": "10000",
                "clientOrderId": "http-kill-1",
            }
            async with http.post(f"{base}/api/exchange/place-order", json=order) as answer:
                assert answer.status == 200, await answer.text()
            async with http.get(f"{base}/v1/openOrders", params={"exchanges": "mock"}) as answer:
                listed = (await answer.json())["orders"]
            assert [o["clientOrderId"] for o in listed] == ["http-kill-1"]
            async with http.post(
                f"{base}/v1/orders:cancelAll", json={"exchanges": ["mock"]}
            ) as answer:
                result = (await answer.json())["results"][0]
            assert [o["clientOrderId"] for o in result["canceledOrders"]] == ["http-kill-1"]
    finally:
        await gateway.stop(grace=0.5)
