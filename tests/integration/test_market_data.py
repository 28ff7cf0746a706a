"""Status, connectivity and market-data RPCs against the in-process server."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from titan_grpc.domain import Symbol
from titan_grpc.exchanges.simulated import SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc

BTC_USDT = Symbol("BTC", "USDT")


async def test_status_lists_every_simulated_venue(stub: pb_grpc.ExchangeServiceStub) -> None:
    status = await stub.GetStatus(pb.GetStatusRequest())
    assert status.mode == pb.MODE_SIMULATED
    assert status.version
    assert [v.exchange for v in status.venues] == ["binance", "coinbase", "kucoin", "mock"]
    assert all(v.simulated and v.market_count == 4 for v in status.venues)


async def test_connections_and_auth_report_per_venue(stub: pb_grpc.ExchangeServiceStub) -> None:
    connections = await stub.TestConnections(pb.TestConnectionsRequest())
    assert [(r.exchange, r.ok, r.simulated) for r in connections.results] == [
        ("binance", True, True),
        ("coinbase", True, True),
        ("kucoin", True, True),
    ]
    assert all(r.HasField("venue_time") for r in connections.results)
    auth = await stub.TestAuth(pb.TestAuthRequest(exchanges=["mock", "kucoin"]))
    assert [(r.exchange, r.ok) for r in auth.results] == [("mock", True), ("kucoin", True)]
    assert "simulated" in auth.results[0].permissions


@pytest.mark.parametrize("spelling", ["BTC-USDT", "BTCUSDT", "btc/usdt", "btc-usdt"])
async def test_market_data_matches_the_venue_book(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld, spelling: str
) -> None:
    answer = await stub.GetMarketData(pb.GetMarketDataRequest(symbol=spelling, exchange="binance"))
    ticker = answer.ticker
    bids, asks, _ = world.engine("binance").book(BTC_USDT, 1)
    assert (ticker.symbol, ticker.venue_symbol) == ("BTC-USDT", "BTCUSDT")
    assert (D(ticker.bid), D(ticker.bid_size)) == (bids[0].price, bids[0].quantity)
    assert (D(ticker.ask), D(ticker.ask_size)) == (asks[0].price, asks[0].quantity)
    assert D(ticker.low_24h) <= D(ticker.last) <= D(ticker.high_24h)
    assert D(ticker.volume_24h) > 0 and D(ticker.quote_volume_24h) > 0
    assert ticker.source.exchange == "binance"
    assert ticker.source.simulated is True and ticker.source.fallback is False
    assert ticker.source.HasField("venue_time")


async def test_venue_native_symbols_differ_per_venue(stub: pb_grpc.ExchangeServiceStub) -> None:
    answer = await stub.GetMarketData(pb.GetMarketDataRequest(symbol="ETHBTC", exchange="coinbase"))
    assert (answer.ticker.symbol, answer.ticker.venue_symbol) == ("ETH-BTC", "ETH-BTC")


async def test_order_book_depth_and_ordering(stub: pb_grpc.ExchangeServiceStub) -> None:
    answer = await stub.GetOrderBook(
        pb.GetOrderBookRequest(symbol="ETH-USDT", exchange="kucoin", depth=5)
    )
    book = answer.book
    assert len(book.bids) == len(book.asks) == 5
    bid_prices = [D(level.price) for level in book.bids]
    ask_prices = [D(level.price) for level in book.asks]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert ask_prices == sorted(ask_prices)
    assert bid_prices[0] < ask_prices[0]
    assert book.source.simulated and book.sequence > 0
    default = await stub.GetOrderBook(pb.GetOrderBookRequest(symbol="ETH-USDT", exchange="kucoin"))
    assert len(default.book.bids) == 20


async def test_recent_trades_newest_first_within_limit(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    world.advance(20)
    answer = await stub.GetRecentTrades(
        pb.GetRecentTradesRequest(symbol="SOL-USDT", exchange="coinbase", limit=7)
    )
    assert len(answer.trades) == 7
    assert answer.source.simulated and answer.venue_symbol == "SOL-USDT"
    times = [t.time.ToDatetime() for t in answer.trades]
    assert times == sorted(times, reverse=True)
    assert all(t.side in (pb.SIDE_BUY, pb.SIDE_SELL) and D(t.quantity) > 0 for t in answer.trades)
