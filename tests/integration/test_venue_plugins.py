"""A venue plugin installed like any distribution (examples/titan-venue-example) and served
beside built-in venues, chosen per venue through TITAN_VENUES."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import grpc
import pytest

from tests.conftest import make_settings
from tests.fakes.binance import FakeBinance
from tests.integration.test_binance import venue_settings
from titan_grpc.config import load_settings
from titan_grpc.errors import ConfigError
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway, start_gateway

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "titan-venue-example"


def _installed_is_current() -> bool:
    try:
        distribution("titan-venue-example")
        module = importlib.import_module("titan_venue_example")
    except (PackageNotFoundError, ImportError):
        return False
    source = EXAMPLE / "titan_venue_example" / "__init__.py"
    return Path(str(module.__file__)).read_bytes() == source.read_bytes()


@pytest.fixture(scope="module")
def example_plugin() -> None:
    """pip-installs the example plugin into the test environment (offline: no index, no
    build isolation, no dependencies) unless the same version is there already."""
    if _installed_is_current():
        return
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--force-reinstall",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(EXAMPLE),
        ],
        check=True,
    )
    importlib.invalidate_caches()
    sys.modules.pop("titan_venue_example", None)


def settings_for(environ: dict[str, str], **overrides: object):  # type: ignore[no-untyped-def]
    loaded = load_settings(environ, env_file=None)
    return replace(
        make_settings(**overrides),
        use_real_exchanges=loaded.use_real_exchanges,
        venues=loaded.venues,
        venue_environment=loaded.venue_environment,
    )


@pytest.fixture
async def gateway(example_plugin: None) -> AsyncIterator[Gateway]:
    settings = settings_for(
        {
            "TITAN_VENUES": "example=real,kucoin",
            "EXAMPLE_PRICE": "50000.10",
            "EXAMPLE_SPREAD": "0.2",
        }
    )
    running = await start_gateway(settings)
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


@pytest.fixture
async def stub(gateway: Gateway) -> AsyncIterator[pb_grpc.ExchangeServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        yield pb_grpc.ExchangeServiceStub(channel)


async def test_the_installed_example_plugin_is_served_with_its_own_settings(
    stub: pb_grpc.ExchangeServiceStub,
) -> None:
    status = await stub.GetStatus(pb.GetStatusRequest())
    assert [(v.exchange, v.simulated) for v in status.venues] == [
        ("example", True),
        ("kucoin", True),
        ("mock", True),
    ]
    ticker = (
        await stub.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="example"))
    ).ticker
    assert (ticker.bid, ticker.ask) == ("50000", "50000.2")  # EXAMPLE_PRICE, EXAMPLE_SPREAD
    assert ticker.source.simulated


async def test_plugin_venues_join_aggregation_best_price_routing_and_portfolio(
    stub: pb_grpc.ExchangeServiceStub,
) -> None:
    aggregated = await stub.GetAggregatedMarketData(
        pb.GetAggregatedMarketDataRequest(symbol="BTC-USDT")
    )
    assert {t.source.exchange for t in aggregated.tickers} == {"example", "kucoin"}
    best = await stub.FindBestPrice(
        pb.FindBestPriceRequest(symbol="BTC-USDT", side=pb.SIDE_BUY, quantity="0.01")
    )
    assert {q.exchange for q in best.quotes} == {"example", "kucoin"}
    route = await stub.PlanRoute(
        pb.PlanRouteRequest(
            symbol="BTC-USDT", side=pb.SIDE_BUY, type=pb.ORDER_TYPE_MARKET, quantity="0.01"
        )
    )
    assert route.legs and {leg.exchange for leg in route.legs} <= {"example", "kucoin"}
    portfolio = await stub.GetPortfolioValue(pb.GetPortfolioValueRequest(quote_asset="USDT"))
    assert "example" in {a.exchange for a in portfolio.assets}
    placed = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="example",
            symbol="BTC-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_MARKET,
            quantity="0.01",
            client_order_id="plugin-1",
        )
    )
    assert placed.order.status == pb.ORDER_STATUS_FILLED and placed.order.simulated


async def test_a_plugins_bad_setting_stops_start_up_naming_the_variable(
    example_plugin: None,
) -> None:
    with pytest.raises(ConfigError) as caught:
        await start_gateway(settings_for({"TITAN_VENUES": "example=real", "EXAMPLE_PRICE": "lots"}))
    assert caught.value.problems == ["EXAMPLE_PRICE: expected a decimal number, got 'lots'"]


async def test_real_and_simulated_venues_side_by_side(example_plugin: None) -> None:
    fake = FakeBinance()
    await fake.start()
    settings = replace(
        settings_for({"USE_REAL_EXCHANGES": "true", "TITAN_VENUES": "binance,coinbase=simulated"}),
        binance=venue_settings(fake.url),
    )
    gateway = await start_gateway(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            answers = await stub.GetAggregatedMarketData(
                pb.GetAggregatedMarketDataRequest(symbol="BTC-USDT")
            )
            marks = {t.source.exchange: t.source.simulated for t in answers.tickers}
            assert marks == {"binance": False, "coinbase": True}
    finally:
        await gateway.stop(grace=0.5)
        await fake.stop()
