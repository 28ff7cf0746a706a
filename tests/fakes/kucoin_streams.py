"""A local fake of KuCoin's public WebSocket feed, driven by the REST fake's book.

Connections must carry the token bullet-public handed out; the server greets with
``welcome``, acks subscriptions that ask for it, answers JSON pings with pongs (unless
told to go silent) and publishes ``/market/ticker`` and ``/market/level2`` messages whose
sequences match the REST fake's ``level2`` snapshots.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal as D
from typing import Any

from aiohttp import web

from tests.fakes.kucoin import FakeKucoin
from tests.fakes.ws import FakeFeedServer, FeedConnection, Level, apply_levels, top_levels


class FakeKucoinStreams:
    def __init__(self, rest: FakeKucoin) -> None:
        self.rest = rest
        self.server = FakeFeedServer("/endpoint", self._greet, self._answer)
        self.silent = False  # stop answering pings (a half-dead connection)
        self.rejected_tokens = 0

    async def start(self) -> str:
        url = await self.server.start()
        self.rest.ws_endpoint = f"{url}/endpoint"
        return url

    async def stop(self) -> None:
        await self.server.stop()

    async def _greet(self, connection: FeedConnection, request: web.Request) -> None:
        if request.query.get("token") != self.rest.ws_token or not request.query.get("connectId"):
            self.rejected_tokens += 1
            await connection.ws.close(code=1008, message=b"token invalid")
            return
        await connection.send({"id": request.query["connectId"], "type": "welcome"})

    async def _answer(self, connection: FeedConnection, frame: Any) -> None:
        kind = frame.get("type")
        if kind == "ping":
            if not self.silent:
                await connection.send({"id": frame["id"], "type": "pong"})
        elif kind == "subscribe":
            topic = frame["topic"]
            if topic.split(":", 1)[1] not in self.rest.symbols:
                answer = {"id": frame["id"], "type": "error", "code": 404, "data": "topic"}
                await connection.send(answer)
                return
            connection.topics.add(topic)
            if frame.get("response"):
                await connection.send({"id": frame["id"], "type": "ack"})
        else:
            await connection.send({"id": frame.get("id"), "type": "error", "code": 400})

    def true_book(self, symbol: str, depth: int) -> tuple[list[Level], list[Level]]:
        spec = self.rest.symbols[symbol]
        return top_levels(spec.bids, spec.asks, depth)

    async def change_book(
        self, symbol: str, bids: Iterable[Level] = (), asks: Iterable[Level] = ()
    ) -> None:
        spec = self.rest.symbols[symbol]
        bids, asks = list(bids), list(asks)
        apply_levels(spec.bids, bids, descending=True)
        apply_levels(spec.asks, asks, descending=False)
        start = spec.sequence + 1

        def rows(levels: list[Level]) -> list[list[str]]:
            out = []
            for price, qty in levels:
                spec.sequence += 1  # every change has its own sequence
                out.append([f"{price:f}", f"{qty:f}", str(spec.sequence)])
            return out

        changes = {"bids": rows(bids), "asks": rows(asks)}
        topic = f"/market/level2:{symbol}"
        await self.server.publish(
            topic,
            {
                "type": "message",
                "topic": topic,
                "subject": "trade.l2update",
                "data": {
                    "changes": changes,
                    "sequenceStart": start,
                    "sequenceEnd": spec.sequence,
                    "symbol": symbol,
                    "time": int(time.time() * 1000),
                },
            },
        )

    async def ticker(self, symbol: str, last: D) -> None:
        spec = self.rest.symbols[symbol]
        topic = f"/market/ticker:{symbol}"
        await self.server.publish(
            topic,
            {
                "type": "message",
                "topic": topic,
                "subject": "trade.ticker",
                "data": {
                    "sequence": str(spec.sequence),
                    "price": f"{last:f}",
                    "size": "0.01",
                    "bestBid": f"{spec.bids[0][0]:f}",
                    "bestBidSize": f"{spec.bids[0][1]:f}",
                    "bestAsk": f"{spec.asks[0][0]:f}",
                    "bestAskSize": f"{spec.asks[0][1]:f}",
                    "time": int(time.time() * 1000),
                },
            },
        )
