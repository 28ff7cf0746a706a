"""Aggregation, best price & arbitrage, routing, portfolio, health and fallback over gRPC.

Simulated venues with fixed seeds and hand-set books give exact expected values; a
flaky venue stands in for a dead or slow exchange.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal as D

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import make_settings
from titan_grpc.domain import Balance, ConnectionCheck, OrderBook, PriceLevel, Symbol, Ticker
from titan_grpc.errors import ExchangeUnavailable
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.market.fallback import FallbackExchange
from titan_grpc.server import Gateway, start_gateway

BTC = Symbol("BTC", "USDT")


class FlakyExchange(SimulatedExchange):
    """A simulated venue that can be made dead (raises) or slow (sleeps) on demand."""

    simulated = False
    dead = False
    delay = 0.0

    async def _maybe_fail(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.dead:
            raise ExchangeUnavailable(f"{self.name}: connection refused", exchange=self.name)

    async def ping(self) -> ConnectionCheck:
        await self._maybe_fail()
        return await super().ping()

    async def ticker(self, symbol: Symbol) -> Ticker:
        await self._maybe_fail()
        return await super().ticker(symbol)

    async def order_book(self, symbol: Symbol, depth: int) -> OrderBook:
        await self._maybe_fail()
        return await super().order_book(symbol, depth)

    async def balances(self) -> list[Balance]:
        await self._maybe_fail()
        return await super().balances()


def levels(*rows: tuple[str, str]) -> list[PriceLevel]:
    return [PriceLevel(D(p), D(q)) for p, q in rows]


@pytest.fixture
def flaky(world: SimulatedWorld) -> FlakyExchange:
    return FlakyExchange("kucoin", world)


@pytest.fixture
async def gateway(world: SimulatedWorld, flaky: FlakyExchange) -> AsyncIterator[Gateway]:
    backends: dict[str, ExchangeBackend] = {
        "binance": SimulatedExchange("binance", world),
        "coinbase": SimulatedExchange("coinbase", world),
        "kucoin": flaky,
    }
    running = await start_gateway(make_settings(), world=world, backends=backends)
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


def set_btc_books(world: SimulatedWorld) -> None:
    """binance: asks 100 x1, 101 x2 (fee 0.1 %); coinbase: bids 102 x2 (fee 0.6 %)."""
    world.engine("binance").set_book(
        BTC, levels(("99", "1")), levels(("100", "1"), ("101", "2")), D(100)
    )
    world.engine("coinbase").set_book(BTC, levels(("102", "2")), levels(("103", "5")), D(102))
    world.engine("kucoin").set_book(
        BTC, levels(("98", "3")), levels(("100.5", "0.5"), ("104", "9")), D(100)
    )


async def test_aggregated_view_matches_the_venues(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    answer = await stub.GetAggregatedMarketData(pb.GetAggregatedMarketDataRequest(symbol="BTCUSDT"))
    assert [t.source.exchange for t in answer.tickers] == ["binance", "coinbase", "kucoin"]
    tops = {v: world.engine(v).book(BTC, 1) for v in ("binance", "coinbase", "kucoin")}
    best_bid = max(((b[0].price, v) for v, (b, _, _) in tops.items()))
    best_ask = min(((a[0].price, v) for v, (_, a, _) in tops.items()))
    assert (D(answer.best_bid.price), answer.best_bid.exchange) == best_bid
    assert (D(answer.best_ask.price), answer.best_ask.exchange) == best_ask
    assert D(answer.spread) == best_ask[0] - best_bid[0]
    assert D(answer.total_volume_24h) == sum(D(t.volume_24h) for t in answer.tickers)
    assert not answer.errors and not answer.skipped_exchanges


async def test_hand_set_books_give_exact_consolidation(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    set_btc_books(world)
    answer = await stub.GetAggregatedMarketData(
        pb.GetAggregatedMarketDataRequest(symbol="BTC-USDT")
    )
    assert (answer.best_bid.exchange, answer.best_bid.price, answer.best_bid.size) == (
        "coinbase",
        "102",
        "2",
    )
    assert (answer.best_ask.exchange, answer.best_ask.price, answer.best_ask.size) == (
        "binance",
        "100",
        "1",
    )
    assert (answer.mid, answer.spread, answer.spread_bps) == (
        "101",
        "-2",
        "-198.02",
    )  # crossed venues


async def test_a_dead_and_a_slow_venue_cost_at_most_their_deadline(
    stub: pb_grpc.ExchangeServiceStub, flaky: FlakyExchange
) -> None:
    flaky.delay = 60.0  # far beyond the client's deadline
    answer = await stub.GetAggregatedMarketData(
        pb.GetAggregatedMarketDataRequest(symbol="BTC-USDT"), timeout=2.0
    )
    assert [t.source.exchange for t in answer.tickers] == ["binance", "coinbase"]
    assert [(e.exchange, e.code) for e in answer.errors] == [("kucoin", "DEADLINE_EXCEEDED")]
    flaky.delay, flaky.dead = 0.0, True
    # The timeout made kucoin suspect: the next call does not wait for it again.
    answer = await stub.GetAggregatedMarketData(
        pb.GetAggregatedMarketDataRequest(symbol="BTC-USDT"), timeout=30.0
    )
    assert [(e.exchange, e.code) for e in answer.errors] == [("kucoin", "UNAVAILABLE")]
    assert "not answering" in answer.errors[0].message


async def test_best_price_net_of_fees_and_arbitrage(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    set_btc_books(world)
    top = await stub.FindBestPrice(pb.FindBestPriceRequest(symbol="BTC-USDT", side=pb.SIDE_BUY))
    # binance 100 * 1.001 = 100.1; kucoin 100.5 * 1.001 = 100.6005; coinbase 103 * 1.006 = 103.618
    assert [(q.exchange, q.price_after_fees) for q in top.quotes] == [
        ("binance", "100.1"),
        ("kucoin", "100.6005"),
        ("coinbase", "103.618"),
    ]
    assert top.best.exchange == "binance"
    deep = await stub.FindBestPrice(
        pb.FindBestPriceRequest(symbol="BTC-USDT", side=pb.SIDE_BUY, quantity="3")
    )
    # binance walks 100 + 2 * 101 = 302 -> 100.6666666667 avg (kucoin: 310.25 / 3)
    assert (deep.best.exchange, deep.best.price) == ("binance", "100.6666666667")
    assert deep.best.price_after_fees == "100.7673333333"
    first, second = top.arbitrage  # largest net profit first; each pair on its own
    # buy 1 on binance at 100 (100.1 with fee) and sell on coinbase at 102 (101.388 after
    # fee); the next unit costs 101.101 and still yields 101.388. Quantity 2.
    assert (first.buy_exchange, first.sell_exchange, first.quantity) == ("binance", "coinbase", "2")
    assert (first.gross_profit, first.net_profit) == ("3", "1.575")  # 204*0.994 - 201*1.001
    # kucoin's 0.5 at 100.5 (100.6005 with fee) also sells at a profit on coinbase.
    assert (second.buy_exchange, second.quantity, second.net_profit) == ("kucoin", "0.5", "0.39375")


async def test_route_plan_splits_for_the_best_average(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    set_btc_books(world)
    plan = await stub.PlanRoute(
        pb.PlanRouteRequest(
            symbol="BTC-USDT", side=pb.SIDE_BUY, type=pb.ORDER_TYPE_MARKET, quantity="2"
        )
    )
    # net: binance 100 -> 100.1, kucoin 100.5 -> 100.6005, binance 101 -> 101.101
    assert [(leg.exchange, leg.quantity, leg.notional, leg.fee) for leg in plan.legs] == [
        ("binance", "1.5", "150.5", "0.1505"),
        ("kucoin", "0.5", "50.25", "0.05025"),
    ]
    assert (plan.filled_quantity, plan.unfilled_quantity, plan.total_fee) == ("2", "0", "0.20075")
    assert plan.total_notional_after_fees == "200.95075"
    # best single: binance 100 + 101 = 201 + 0.201 = 201.201 -> saving 0.25025
    assert (plan.best_single_exchange, plan.saving_vs_best_single) == ("binance", "0.25025")
    limited = await stub.PlanRoute(
        pb.PlanRouteRequest(
            symbol="BTC-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_LIMIT,
            quantity="2",
            price="100.5",
        )
    )
    assert [(leg.exchange, leg.quantity) for leg in limited.legs] == [
        ("binance", "1"),
        ("kucoin", "0.5"),
    ]
    assert limited.unfilled_quantity == "0.5"


async def test_portfolio_values_every_venue_and_lists_the_unpriced(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    for venue in ("binance", "coinbase", "kucoin"):
        engine = world.engine(venue)
        engine.set_book(BTC, levels(("40000", "1")), levels(("40010", "1")), D(40005))
        engine.set_book(
            Symbol("ETH", "USDT"), levels(("2000", "1")), levels(("2002", "1")), D(2001)
        )
        engine.set_book(Symbol("SOL", "USDT"), levels(("100", "1")), levels(("100.2", "1")), D(100))
    answer = await stub.GetPortfolioValue(pb.GetPortfolioValueRequest())
    assert answer.quote_asset == "USDT"
    values = {(a.exchange, a.asset): (a.value, a.price_path) for a in answer.assets}
    # binance: 100000 USDT + 1 BTC @ 40005 + 10 ETH @ 2001 + 100 SOL @ 100.1
    assert values[("binance", "BTC")] == ("40005", "BTC-USDT@binance")
    assert values[("binance", "SOL")] == ("10010", "SOL-USDT@binance")
    venues = {v.exchange: v.value for v in answer.venues}
    assert venues == {
        "binance": "170025",  # 100000 + 40005 + 20010 + 10010
        "coinbase": "80007.5",  # 50000 + 20002.5 + 10005
        "kucoin": "40006.25",  # 25000 + 10001.25 + 5005
    }
    assert answer.total_value == "290038.75"
    assert [(u.exchange, u.asset, u.quantity) for u in answer.unpriced] == [("kucoin", "KCS", "10")]
    in_btc = await stub.GetPortfolioValue(
        pb.GetPortfolioValueRequest(quote_asset="BTC", exchanges=["coinbase"])
    )
    eth = next(a for a in in_btc.assets if a.asset == "ETH")
    assert eth.price_path.startswith("ETH-BTC@coinbase")


async def test_health_monitor_skips_unhealthy_venues_with_hysteresis(
    gateway: Gateway,
    stub: pb_grpc.ExchangeServiceStub,
    channel: grpc.aio.Channel,
    flaky: FlakyExchange,
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    kucoin_service = health_pb2.HealthCheckRequest(service="titan.v1.ExchangeService/kucoin")
    assert (await health.Check(kucoin_service)).status == health_pb2.HealthCheckResponse.SERVING
    flaky.dead = True
    for _ in range(2):
        await gateway.monitor.check_once()
    assert gateway.monitor.is_healthy("kucoin")  # two failures: not yet
    await gateway.monitor.check_once()
    status = {v.exchange: v for v in (await stub.GetStatus(pb.GetStatusRequest())).venues}
    assert (status["kucoin"].healthy, status["kucoin"].consecutive_failures) == (False, 3)
    assert "connection refused" in status["kucoin"].last_error
    assert status["binance"].healthy and status["binance"].HasField("latency")
    answer = await stub.GetAggregatedMarketData(
        pb.GetAggregatedMarketDataRequest(symbol="BTC-USDT")
    )
    assert list(answer.skipped_exchanges) == ["kucoin"] and not answer.errors
    route = await stub.PlanRoute(
        pb.PlanRouteRequest(
            symbol="BTC-USDT", side=pb.SIDE_SELL, type=pb.ORDER_TYPE_MARKET, quantity="0.1"
        )
    )
    assert list(route.skipped_exchanges) == ["kucoin"]
    assert (await health.Check(kucoin_service)).status == health_pb2.HealthCheckResponse.NOT_SERVING
    flaky.dead = False
    await gateway.monitor.check_once()
    assert not gateway.monitor.is_healthy("kucoin")  # one success: not yet
    await gateway.monitor.check_once()
    assert gateway.monitor.is_healthy("kucoin")
    assert (await health.Check(kucoin_service)).status == health_pb2.HealthCheckResponse.SERVING


async def test_fallback_serves_marked_market_data_but_never_balances(world: SimulatedWorld) -> None:
    real = FlakyExchange("binance", world)
    real.dead = True
    backends: dict[str, ExchangeBackend] = {
        "binance": FallbackExchange(real, SimulatedExchange("binance", SimulatedWorld(7))),
    }
    gateway = await start_gateway(
        replace(make_settings(), fallback_to_mock=True), world=world, backends=backends
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            ticker = (
                await stub.GetMarketData(
                    pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance")
                )
            ).ticker
            assert ticker.source.fallback and ticker.source.simulated
            assert "fallback: binance failed" in ticker.source.note
            book = (
                await stub.GetOrderBook(
                    pb.GetOrderBookRequest(symbol="BTC-USDT", exchange="binance")
                )
            ).book
            assert book.source.fallback
            balances = await stub.GetBalances(pb.GetBalancesRequest(exchanges=["binance"]))
            assert not balances.venues and balances.errors[0].code == "UNAVAILABLE"
    finally:
        await gateway.stop(grace=0.5)
