"""Runs the test suite's fake Binance in its own process (prints its URL and keys as JSON)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal as D

from tests.fakes.binance import API_KEY, API_SECRET, FakeBinance, SymbolSpec


def deep_book() -> dict[str, SymbolSpec]:
    bids = [[D("43000") - D(i), D("5")] for i in range(200)]
    asks = [[D("43001") + D(i), D("5")] for i in range(200)]
    return {
        "BTCUSDT": SymbolSpec(
            "BTC", "USDT", D("0.01"), D("0.00001"), D("0.00001"), D("9000"), D("5"), bids, asks
        )
    }


async def main() -> None:
    fake = FakeBinance(weight_limit=10_000_000, symbols=deep_book())
    fake.balances["USDT"] = [D("100000000"), D(0)]
    url = await fake.start()
    print(json.dumps({"url": url, "key": API_KEY, "secret": API_SECRET}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
