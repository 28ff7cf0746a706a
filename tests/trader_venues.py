"""The three fake venues (each on a cheaper fee tier than the venue's standard one) and the
simulator behind one real gateway: the fixture the trader-surface tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal as D

import grpc
import pytest

from tests.conftest import make_settings
from tests.fakes import binance, coinbase, kucoin
from tests.fakes.binance import FakeBinance
from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.kucoin import FakeKucoin
from titan_grpc.config import Secret, VenueCredentials, VenueSettings
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.binance import BinanceExchange
from titan_grpc.exchanges.coinbase import CoinbaseExchange
from titan_grpc.exchanges.kucoin import KucoinExchange
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.net import RetryPolicy
from titan_grpc.server import Gateway, start_gateway

FAST_RETRY = RetryPolicy(attempts=2, base_delay_seconds=0.001, max_delay_seconds=0.005)
TUNING = {"retry": FAST_RETRY, "reconcile_delays": (0.0, 0.01), "total_timeout": 2.0}


@dataclass
class Venues:
    binance: FakeBinance
    coinbase: FakeCoinbase
    kucoin: FakeKucoin
    stub: pb_grpc.ExchangeServiceStub
    world: SimulatedWorld


@pytest.fixture
async def venues() -> AsyncIterator[Venues]:
    # Each account sits on a cheaper tier than the venue's standard one.
    fake_binance = FakeBinance(maker_fee=D("0.00045"), taker_fee=D("0.0006"))
    fake_coinbase = FakeCoinbase(maker_fee=D("0.0015"), taker_fee=D("0.0025"))
    fake_kucoin = FakeKucoin(maker_fee=D("0.0002"), taker_fee=D("0.0007"))
    for fake in (fake_binance, fake_coinbase, fake_kucoin):
        await fake.start()
    world = SimulatedWorld(7)
    backends: dict[str, ExchangeBackend] = {
        "binance": BinanceExchange(
            VenueSettings(
                "binance",
                VenueCredentials(Secret(binance.API_KEY), Secret(binance.API_SECRET)),
                True,
                fake_binance.url,
                "",
            ),
            **TUNING,  # type: ignore[arg-type]
        ),
        "coinbase": CoinbaseExchange(
            VenueSettings(
                "coinbase",
                VenueCredentials(
                    Secret(coinbase.API_KEY),
                    Secret(coinbase.API_SECRET),
                    Secret(coinbase.PASSPHRASE),
                ),
                True,
                fake_coinbase.url,
                "",
            ),
            **TUNING,  # type: ignore[arg-type]
        ),
        "kucoin": KucoinExchange(
            VenueSettings(
                "kucoin",
                VenueCredentials(
                    Secret(kucoin.API_KEY), Secret(kucoin.API_SECRET), Secret(kucoin.PASSPHRASE)
                ),
                testnet=False,
                base_url=fake_kucoin.url,
                ws_url="",
            ),
            **TUNING,  # type: ignore[arg-type]
        ),
        "mock": SimulatedExchange("mock", world),
    }
    gateway: Gateway = await start_gateway(
        make_settings(use_real_exchanges=True), world=world, backends=backends
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")
    try:
        yield Venues(
            fake_binance, fake_coinbase, fake_kucoin, pb_grpc.ExchangeServiceStub(channel), world
        )
    finally:
        await channel.close()
        await gateway.stop(grace=0.5)
        for fake in (fake_binance, fake_coinbase, fake_kucoin):
            await fake.stop()
