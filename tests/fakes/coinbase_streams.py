"""A local fake of Coinbase Exchange's ws-feed, driven by the REST fake's books.

A client must subscribe within the connection (``type: subscribe`` with product_ids and
channels); the server confirms with ``subscriptions`` or answers ``error``, refuses
``level2`` without authentication as the venue does, sends a ``snapshot`` on a
``level2_batch`` subscription and then ``l2update`` changes (no sequence numbers), and
``ticker`` messages with the product's sequence.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

from aiohttp import web

from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.ws import FakeFeedServer, FeedConnection, Level, apply_levels, top_levels

PUBLIC_CHANNELS = {"ticker", "heartbeat", "level2_batch"}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeCoinbaseStreams:
    def __init__(self, rest: FakeCoinbase) -> None:
        self.rest = rest
        self.server = FakeFeedServer("/", self._greet, self._answer)
        self.sequence = 1000
        self.snapshots_sent = 0

    async def start(self) -> str:
        return await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def _greet(self, connection: FeedConnection, request: web.Request) -> None:
        return None

    async def _answer(self, connection: FeedConnection, frame: Any) -> None:
        if frame.get("type") != "subscribe":
            await connection.send({"type": "error", "message": "Failed to subscribe"})
            return
        products, channels = frame.get("product_ids", []), frame.get("channels", [])
        unknown = [p for p in products if p not in self.rest.products]
        if unknown or not products:
            await connection.send(
                {"type": "error", "message": "Failed to subscribe", "reason": f"{unknown}"}
            )
            return
        if "level2" in channels and "signature" not in frame:
            await connection.send(
                {
                    "type": "error",
                    "message": "Failed to subscribe",
                    "reason": "level2 channel requires authentication",
                }
            )
            return
        if not set(channels) <= PUBLIC_CHANNELS:
            await connection.send({"type": "error", "message": "Failed to subscribe"})
            return
        for channel in channels:
            connection.topics.update(f"{channel}:{product}" for product in products)
        listed = [{"name": c, "product_ids": products} for c in channels]
        await connection.send({"type": "subscriptions", "channels": listed})
        if "level2_batch" in channels:
            for product in products:
                book = self.rest.products[product]
                self.snapshots_sent += 1
                await connection.send(
                    {
                        "type": "snapshot",
                        "product_id": product,
                        "bids": [[f"{p:f}", f"{q:f}"] for p, q in book.bids],
                        "asks": [[f"{p:f}", f"{q:f}"] for p, q in book.asks],
                    }
                )

    def true_book(self, product: str, depth: int) -> tuple[list[Level], list[Level]]:
        book = self.rest.products[product]
        return top_levels(book.bids, book.asks, depth)

    async def change_book(
        self, product: str, bids: Iterable[Level] = (), asks: Iterable[Level] = ()
    ) -> None:
        book = self.rest.products[product]
        bids, asks = list(bids), list(asks)
        apply_levels(book.bids, bids, descending=True)
        apply_levels(book.asks, asks, descending=False)
        self.sequence += 1
        changes = [["buy", f"{p:f}", f"{q:f}"] for p, q in bids]
        changes += [["sell", f"{p:f}", f"{q:f}"] for p, q in asks]
        await self.server.publish(
            f"level2_batch:{product}",
            {"type": "l2update", "product_id": product, "changes": changes, "time": _now()},
        )

    async def ticker(self, product: str, last: D) -> None:
        book = self.rest.products[product]
        self.sequence += 1
        await self.server.publish(
            f"ticker:{product}",
            {
                "type": "ticker",
                "sequence": self.sequence,
                "product_id": product,
                "price": f"{last:f}",
                "best_bid": f"{book.bids[0][0]:f}",
                "best_bid_size": f"{book.bids[0][1]:f}",
                "best_ask": f"{book.asks[0][0]:f}",
                "best_ask_size": f"{book.asks[0][1]:f}",
                "side": "buy",
                "time": _now(),
                "trade_id": int(time.time()),
                "last_size": "0.01",
            },
        )

    async def heartbeat(self, product: str) -> None:
        await self.server.publish(
            f"heartbeat:{product}",
            {
                "type": "heartbeat",
                "sequence": self.sequence,
                "last_trade_id": 1,
                "product_id": product,
                "time": _now(),
            },
        )
