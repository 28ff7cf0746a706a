"""A local fake of Binance's public WebSocket streams, driven by the REST fake's book.

The true book is the REST fake's (``FakeBinance.symbols``): ``change_book`` edits it, bumps
its update id and publishes the matching ``depthUpdate`` diff, so a REST depth snapshot
and the stream always agree the way Binance's do. Streams are named in the URL
(``/stream?streams=btcusdt@depth@100ms/...``) and frames come wrapped as
``{"stream", "data"}``. Faults come from ``FakeFeedServer``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal as D
from typing import Any

from aiohttp import web

from tests.fakes.binance import FakeBinance
from tests.fakes.ws import FakeFeedServer, FeedConnection, Level, apply_levels, top_levels


class FakeBinanceStreams:
    def __init__(self, rest: FakeBinance) -> None:
        self.rest = rest
        self.server = FakeFeedServer("/stream", self._greet, self._answer)
        self._trade_ids = 9000

    async def start(self) -> str:
        return await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def _greet(self, connection: FeedConnection, request: web.Request) -> None:
        streams = request.query.get("streams", "")
        for name in streams.split("/"):
            symbol = name.split("@", 1)[0]
            if symbol != symbol.lower():  # Binance wants lower-case symbols in stream names
                await connection.ws.close(code=1008, message=b"Invalid request")
                return
            connection.topics.add(name)

    async def _answer(self, connection: FeedConnection, frame: Any) -> None:
        return None  # the combined-stream URL carries the subscriptions

    async def _publish(self, stream: str, data: dict[str, Any]) -> None:
        await self.server.publish(stream, {"stream": stream, "data": data})

    def true_book(self, symbol: str, depth: int) -> tuple[list[Level], list[Level]]:
        spec = self.rest.symbols[symbol]
        return top_levels(spec.bids, spec.asks, depth)

    async def change_book(
        self, symbol: str, bids: Iterable[Level] = (), asks: Iterable[Level] = ()
    ) -> None:
        """Apply absolute level sizes (0 removes) to the true book and publish the diff."""
        spec = self.rest.symbols[symbol]
        bids, asks = list(bids), list(asks)
        apply_levels(spec.bids, bids, descending=True)
        apply_levels(spec.asks, asks, descending=False)
        first = spec.update_id + 1
        spec.update_id += 1 + len(bids) + len(asks) // 2  # one event spans several ids
        await self._publish(
            f"{symbol.lower()}@depth@100ms",
            {
                "e": "depthUpdate",
                "E": int(time.time() * 1000),
                "s": symbol,
                "U": first,
                "u": spec.update_id,
                "b": [[f"{p:f}", f"{q:f}"] for p, q in bids],
                "a": [[f"{p:f}", f"{q:f}"] for p, q in asks],
            },
        )

    async def publish_top(self, symbol: str) -> None:
        spec = self.rest.symbols[symbol]
        (bid, bid_qty), (ask, ask_qty) = spec.bids[0], spec.asks[0]
        await self._publish(
            f"{symbol.lower()}@bookTicker",
            {
                "u": spec.update_id,
                "s": symbol,
                "b": f"{bid:f}",
                "B": f"{bid_qty:f}",
                "a": f"{ask:f}",
                "A": f"{ask_qty:f}",
            },
        )

    async def trade(self, symbol: str, price: D, quantity: D) -> None:
        self._trade_ids += 1
        await self._publish(
            f"{symbol.lower()}@trade",
            {
                "e": "trade",
                "E": int(time.time() * 1000),
                "s": symbol,
                "t": self._trade_ids,
                "p": f"{price:f}",
                "q": f"{quantity:f}",
                "T": int(time.time() * 1000),
                "m": True,
                "M": True,
            },
        )
