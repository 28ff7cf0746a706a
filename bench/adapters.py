"""Client-side CPU per call: TITAN's Binance adapter vs ccxt, against one fake Binance."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

from titan_grpc.config import Secret, VenueCredentials, VenueSettings
from titan_grpc.domain import OrderRequest, OrderType, Side, Symbol, TimeInForce
from titan_grpc.exchanges.binance import BinanceExchange

ROOT = Path(__file__).resolve().parent.parent
BTC = Symbol("BTC", "USDT")


async def _cpu_per_call(call: Callable[[int], Awaitable[object]], calls: int) -> float:
    for index in range(min(20, calls)):  # warm-up
        await call(-index - 1)
    started = time.process_time()
    for index in range(calls):
        await call(index)
    return (time.process_time() - started) / calls * 1000


async def measure(calls: int) -> dict[str, tuple[float, float]]:
    import ccxt.async_support as ccxt  # benchmark-only dependency

    fake = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-m", "bench.fake_binance_server"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        info = json.loads(fake.stdout.readline())
        url = info["url"]
        titan = BinanceExchange(
            VenueSettings(
                "binance",
                VenueCredentials(Secret(info["key"]), Secret(info["secret"])),
                True,
                url,
                "",
            )
        )
        exchange = ccxt.binance(
            {
                "apiKey": info["key"],
                "secret": info["secret"],
                "enableRateLimit": False,
                "options": {
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "defaultType": "spot",
                    "adjustForTimeDifference": False,
                },
            }
        )
        # Spot only, no margin/currency look-ups: the fake serves the spot REST API.
        exchange.options["fetchMarkets"] = {"types": ["spot"]}
        exchange.options["fetchMargins"] = False
        exchange.options["fetchCurrencies"] = False
        for key in list(exchange.urls["api"]):
            if (
                isinstance(exchange.urls["api"][key], str)
                and "api.binance.com" in exchange.urls["api"][key]
            ):
                exchange.urls["api"][key] = exchange.urls["api"][key].replace(
                    "https://api.binance.com", url
                )
        await exchange.load_markets()
        await titan.markets()
        await titan.server_time()
        figures: dict[str, tuple[float, float]] = {}
        figures["ticker (24h)"] = (
            await _cpu_per_call(lambda i: titan.ticker(BTC), calls),
            await _cpu_per_call(lambda i: exchange.fetch_ticker("BTC/USDT"), calls),
        )
        figures["order book, depth 100"] = (
            await _cpu_per_call(lambda i: titan.order_book(BTC, 100), calls),
            await _cpu_per_call(lambda i: exchange.fetch_order_book("BTC/USDT", 100), calls),
        )

        def titan_order(i: int) -> Awaitable[object]:
            request = OrderRequest(
                BTC,
                Side.BUY,
                OrderType.LIMIT,
                Decimal("0.001"),
                Decimal("30000"),
                TimeInForce.GTC,
                f"t-{i}",
            )
            return titan.place_order(request)

        figures["limit order placement"] = (
            await _cpu_per_call(titan_order, calls),
            await _cpu_per_call(
                lambda i: exchange.create_order(
                    "BTC/USDT", "limit", "buy", 0.001, 30000, {"newClientOrderId": f"c-{i}"}
                ),
                calls,
            ),
        )
        await exchange.close()
        await titan.close()
        return figures
    finally:
        fake.terminate()
        fake.wait(timeout=30)
