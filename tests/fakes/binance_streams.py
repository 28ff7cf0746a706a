"""A local fake of Binance's public WebSocket streams, driven by the REST fake's book.

The true book is the REST fake's (``FakeBinance.symbols``): ``change_book`` edits it, bumps
its update id and publishes the matching ``depthUpdate`` diff, so a REST depth snapshot
and the stream always agree the way Binance's do. Streams are named in the URL
(``/stream?streams=btcusdt@depth@100ms/...``) and frames come wrapped as
``{"stream", "data"}``. Faults come from ``FakeFeedServer``.

``FakeBinanceUserData`` is the WebSocket API host's private feed: it checks
``userDataStream.subscribe.signature`` as Binance documents (apiKey, a timestamp inside
recvWindow, HMAC-SHA256 hex over every other param sorted by name as ``k=v&...``) and
sends the REST fake's account events as ``{"subscriptionId", "event"}`` in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import time
from collections.abc import Iterable
from decimal import Decimal as D
from typing import Any

from aiohttp import web

from tests.fakes.binance import API_KEY, FakeBinance
from tests.fakes.ws import (
    FakeFeedServer,
    FeedConnection,
    Level,
    _mangle,
    apply_levels,
    top_levels,
)


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


class FakeBinanceUserData:
    def __init__(self, rest: FakeBinance, api_key: str = API_KEY) -> None:
        self.rest = rest
        self.api_key = api_key
        self.server = FakeFeedServer("/ws-api/v3", self._greet, self._answer)
        self.subscriptions: dict[FeedConnection, int] = {}
        self.refusals: list[int] = []
        self.deliver = True  # False: events are lost on the way (a cut connection)
        self.mangle = 0  # events sent with unreadable numbers (right shape)
        self._ids = itertools.count(0)
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        rest.account_listeners.append(self._events.put_nowait)

    @property
    def url(self) -> str:
        return f"{self.server.url}/ws-api/v3"

    async def start(self) -> str:
        await self.server.start()
        self._pump = asyncio.create_task(self._deliver())
        return self.url

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self.server.stop()

    def subscribed(self) -> int:
        return sum(1 for c in self.server.connections if c in self.subscriptions)

    async def _greet(self, connection: FeedConnection, request: web.Request) -> None:
        return None

    async def _answer(self, connection: FeedConnection, frame: Any) -> None:
        request_id = frame.get("id")
        if frame.get("method") != "userDataStream.subscribe.signature":
            await self._error(connection, request_id, -1100, "Unknown method.")
            return
        params = dict(frame.get("params") or {})
        signature = str(params.pop("signature", ""))
        if params.get("apiKey") != self.api_key:
            await self._error(
                connection, request_id, -2015, "Invalid API-key, IP, or permissions for action."
            )
            return
        timestamp = params.get("timestamp")
        window = int(params.get("recvWindow", 5000))
        now = self.rest.now_ms()
        if not isinstance(timestamp, int) or not (
            timestamp < now + 1000 and now - timestamp <= window
        ):
            await self._error(
                connection,
                request_id,
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            )
            return
        payload = "&".join(f"{name}={params[name]}" for name in sorted(params))
        expected = hmac.new(
            self.rest.api_secret.encode(), payload.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            await self._error(
                connection, request_id, -1022, "Signature for this request is not valid."
            )
            return
        subscription = next(self._ids)
        self.subscriptions[connection] = subscription
        await connection.send(
            {"id": request_id, "status": 200, "result": {"subscriptionId": subscription}}
        )

    async def _error(
        self, connection: FeedConnection, request_id: Any, code: int, message: str
    ) -> None:
        self.refusals.append(code)
        await connection.send(
            {"id": request_id, "status": 400, "error": {"code": code, "msg": message}}
        )

    async def _deliver(self) -> None:
        while True:
            event = await self._events.get()
            if not self.deliver:
                continue
            if self.mangle:
                self.mangle -= 1
                event = _mangle(event)
            for connection, subscription in list(self.subscriptions.items()):
                if connection in self.server.connections:
                    await connection.send({"subscriptionId": subscription, "event": event})

    async def wait_subscribed(self, count: int = 1) -> None:
        await self.server.wait_until(lambda: self.subscribed() >= count)
