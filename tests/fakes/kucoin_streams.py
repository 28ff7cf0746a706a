"""A local fake of KuCoin's public WebSocket feed, driven by the REST fake's book.

Connections must carry the token bullet-public handed out; the server greets with
``welcome``, acks subscriptions that ask for it, answers JSON pings with pongs (unless
told to go silent) and publishes ``/market/ticker`` and ``/market/level2`` messages whose
sequences match the REST fake's ``level2`` snapshots.

A connection made with the bullet-private token may also subscribe the private topics
(``/spotMarket/tradeOrdersV2``, ``/account/balance``) with ``privateChannel: true``; they
carry the REST fake's order and balance messages in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from decimal import Decimal as D
from typing import Any

from aiohttp import web

from tests.fakes.kucoin import FakeKucoin
from tests.fakes.ws import FakeFeedServer, FeedConnection, Level, apply_levels, top_levels

PRIVATE_TOPICS = ("/spotMarket/tradeOrdersV2", "/account/balance")


class FakeKucoinStreams:
    def __init__(self, rest: FakeKucoin) -> None:
        self.rest = rest
        self.server = FakeFeedServer("/endpoint", self._greet, self._answer)
        self.silent = False  # stop answering pings (a half-dead connection)
        self.rejected_tokens = 0
        self.private_connections: set[FeedConnection] = set()
        self.deliver = True  # False: private messages are lost (a cut connection)
        self._private: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        rest.account_listeners.append(lambda topic, m: self._private.put_nowait((topic, m)))

    async def start(self) -> str:
        url = await self.server.start()
        self.rest.ws_endpoint = f"{url}/endpoint"
        self._pump = asyncio.create_task(self._deliver_private())
        return url

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self.server.stop()

    async def _deliver_private(self) -> None:
        while True:
            topic, message = await self._private.get()
            if self.deliver:
                await self.server.publish(topic, message)

    def private_subscribers(self) -> int:
        return self.server.subscribers(PRIVATE_TOPICS[0])

    async def _greet(self, connection: FeedConnection, request: web.Request) -> None:
        token = request.query.get("token")
        valid = (self.rest.ws_token, self.rest.ws_private_token)
        if token not in valid or not request.query.get("connectId"):
            self.rejected_tokens += 1
            await connection.ws.close(code=1008, message=b"token invalid")
            return
        if token == self.rest.ws_private_token:
            self.private_connections.add(connection)
        await connection.send({"id": request.query["connectId"], "type": "welcome"})

    async def _answer(self, connection: FeedConnection, frame: Any) -> None:
        kind = frame.get("type")
        if kind == "ping":
            if not self.silent:
                await connection.send({"id": frame["id"], "type": "pong"})
        elif kind == "subscribe" and frame["topic"] in PRIVATE_TOPICS:
            if (
                connection not in self.private_connections
                or frame.get("privateChannel") is not True
            ):
                answer = {"id": frame["id"], "type": "error", "code": 401, "data": "private"}
                await connection.send(answer)
                return
            connection.topics.add(frame["topic"])
            if frame.get("response"):
                await connection.send({"id": frame["id"], "type": "ack"})
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
