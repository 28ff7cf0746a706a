"""A local fake of Coinbase Exchange's ws-feed, driven by the REST fake's books.

A client must subscribe within the connection (``type: subscribe`` with product_ids and
channels); the server confirms with ``subscriptions`` or answers ``error``, accepts
``level2`` only with a valid signature (as the venue demands), sends a ``snapshot`` on a
``level2_batch`` subscription and then ``l2update`` changes (no sequence numbers), and
``ticker`` messages with the product's sequence.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal as D
from typing import Any

from aiohttp import web

from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.ws import FakeFeedServer, FeedConnection, Level, apply_levels, top_levels

PUBLIC_CHANNELS = {"ticker", "heartbeat", "level2_batch"}
AUTHENTICATED_CHANNELS = {"level2", "user"}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class FakeCoinbaseStreams:
    def __init__(self, rest: FakeCoinbase) -> None:
        self.rest = rest
        self.server = FakeFeedServer("/", self._greet, self._answer)
        self.sequence = 1000
        self.snapshots_sent = 0
        self.signed_subscriptions = 0
        self.refused_subscriptions = 0
        self.deliver = True  # False: user channel messages are lost (a cut connection)
        self._user_messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        rest.account_listeners.append(self._user_messages.put_nowait)

    async def start(self) -> str:
        url = await self.server.start()
        self._pump = asyncio.create_task(self._deliver_user())
        return url

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        await self.server.stop()

    async def _deliver_user(self) -> None:
        """Our orders' messages to the user channel's subscribers, in order."""
        while True:
            message = await self._user_messages.get()
            if self.deliver:
                await self.server.publish(f"user:{message['product_id']}", message)

    def user_subscribers(self) -> int:
        return sum(any(t.startswith("user:") for t in c.topics) for c in self.server.connections)

    async def _greet(self, connection: FeedConnection, request: web.Request) -> None:
        return None

    async def _answer(self, connection: FeedConnection, frame: Any) -> None:
        if frame.get("type") != "subscribe":
            await connection.send({"type": "error", "message": "Failed to subscribe"})
            return
        products = frame.get("product_ids", [])
        # A channel is a name (for product_ids) or {"name", "product_ids"} of its own.
        channels = [
            (c, products) if isinstance(c, str) else (c.get("name"), c.get("product_ids", []))
            for c in frame.get("channels", [])
        ]
        wanted = {p for _, listed in channels for p in listed}
        unknown = [p for p in wanted if p not in self.rest.products]
        if unknown or not wanted:
            await connection.send(
                {"type": "error", "message": "Failed to subscribe", "reason": f"{unknown}"}
            )
            return
        names = {name for name, _ in channels}
        if names & AUTHENTICATED_CHANNELS:
            refusal = self._authentication_problem(frame)
            if refusal:
                self.refused_subscriptions += 1
                await connection.send(
                    {"type": "error", "message": "Failed to subscribe", "reason": refusal}
                )
                return
        if not names <= PUBLIC_CHANNELS | AUTHENTICATED_CHANNELS:
            await connection.send({"type": "error", "message": "Failed to subscribe"})
            return
        for name, listed in channels:
            # level2 and level2_batch carry the same messages: one topic for both.
            topic = "level2_batch" if name == "level2" else name
            connection.topics.update(f"{topic}:{product}" for product in listed)
        answer = [{"name": name, "product_ids": listed} for name, listed in channels]
        await connection.send({"type": "subscriptions", "channels": answer})
        for name, listed in channels:
            if name not in ("level2_batch", "level2"):
                continue
            for product in listed:
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

    def _authentication_problem(self, frame: dict[str, Any]) -> str:
        """Why a signed subscription is refused ("" when it is fine): the fields of a
        signed ``GET /users/self/verify``, checked as the REST fake checks headers."""
        if not all(frame.get(name) for name in ("signature", "key", "passphrase", "timestamp")):
            return "channel requires authentication"
        if frame["key"] != self.rest.api_key or frame["passphrase"] != self.rest.passphrase:
            return "invalid API key or passphrase"
        if abs(self.rest.now() - float(frame["timestamp"])) > 30:
            return "request timestamp expired"
        message = f"{frame['timestamp']}GET/users/self/verify".encode()
        secret = base64.b64decode(self.rest.api_secret)
        expected = base64.b64encode(hmac.new(secret, message, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, frame["signature"]):
            return "invalid signature"
        self.signed_subscriptions += 1
        return ""

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
