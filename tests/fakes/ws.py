"""A loopback WebSocket server for the venue stream fakes, with fault injection.

A venue fake supplies how a connection is greeted and how client frames are answered;
this server keeps the connections and their subscriptions, and delivers published data
frames through the faults a real feed shows: frames skipped (a sequence gap), two frames
swapped (out of order), a garbage frame in place of data, a frame of the right shape with
unreadable numbers, and connections dropped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any

from aiohttp import WSMsgType, web

Level = tuple[D, D]
Greeter = Callable[["FeedConnection", web.Request], Awaitable[None]]
Answerer = Callable[["FeedConnection", Any], Awaitable[None]]


@dataclass(eq=False)
class FeedConnection:
    ws: web.WebSocketResponse
    topics: set[str] = field(default_factory=set)

    async def send(self, frame: Any) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(frame))


@dataclass
class FeedFaults:
    skip: int = 0  # data frames dropped for every subscriber
    swap: int = 0  # data frames held back and sent after the next one
    garbage: int = 0  # data frames replaced by text that is not JSON
    mangle: int = 0  # data frames sent as JSON of the right shape but with unreadable numbers


class FakeFeedServer:
    def __init__(self, path: str, greet: Greeter, answer: Answerer) -> None:
        self._path, self._greet, self._answer = path, greet, answer
        self.connections: set[FeedConnection] = set()
        self.connects = 0
        self.faults = FeedFaults()
        self.frames_received: list[Any] = []
        self._held: list[tuple[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get(self._path, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        await self.drop_all()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = FeedConnection(ws)
        self.connects += 1
        await self._greet(connection, request)
        await self._notify(lambda: self.connections.add(connection))
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(message.data)
                self.frames_received.append(frame)
                await self._answer(connection, frame)
                await self._notify(lambda: None)
        finally:
            await self._notify(lambda: self.connections.discard(connection))
        return ws

    async def _notify(self, change: Callable[[], object]) -> None:
        async with self._changed:
            change()
            self._changed.notify_all()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition`` holds (it is checked after every connection change)."""
        async with self._changed:
            await self._changed.wait_for(condition)

    def subscribers(self, topic: str) -> int:
        return sum(topic in connection.topics for connection in self.connections)

    async def publish(self, topic: str, frame: Any) -> None:
        """Send a data frame to every subscriber of ``topic``, through the faults."""
        if self.faults.skip:
            self.faults.skip -= 1
            return
        if self.faults.swap:
            self.faults.swap -= 1
            self._held.append((topic, frame))
            return
        if self.faults.garbage:
            self.faults.garbage -= 1
            await self._send_raw(topic, "{garbage, not json")
            return
        if self.faults.mangle:
            self.faults.mangle -= 1
            frame = _mangle(frame)
        await self._send(topic, frame)
        held, self._held = self._held, []
        for held_topic, held_frame in held:
            await self._send(held_topic, held_frame)

    async def _send(self, topic: str, frame: Any) -> None:
        for connection in list(self.connections):
            if topic in connection.topics:
                await connection.send(frame)

    async def _send_raw(self, topic: str, text: str) -> None:
        for connection in list(self.connections):
            if topic in connection.topics and not connection.ws.closed:
                await connection.ws.send_str(text)

    async def drop_all(self) -> None:
        """Close every connection abruptly (as a venue restart or a network cut would)."""
        for connection in list(self.connections):
            await connection.ws.close(code=1011, message=b"fake venue dropped the connection")


def _mangle(value: Any) -> Any:
    """The frame with every number (and numeric string) replaced by one that is not."""
    if isinstance(value, dict):
        return {key: _mangle(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mangle(item) for item in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) or (isinstance(value, str) and _numeric(value)):
        return "1.2.3"
    return value


def _numeric(text: str) -> bool:
    try:
        D(text)
    except ArithmeticError:
        return False
    return True


def apply_levels(levels: list[list[D]], changes: list[Level], *, descending: bool) -> None:
    """Set absolute sizes (0 removes) on one side of a true book kept best first."""
    book = {price: qty for price, qty in levels}
    for price, qty in changes:
        if qty == 0:
            book.pop(price, None)
        else:
            book[price] = qty
    levels[:] = [[p, q] for p, q in sorted(book.items(), reverse=descending)]


def top_levels(
    bids: list[list[D]], asks: list[list[D]], depth: int
) -> tuple[list[Level], list[Level]]:
    """The first ``depth`` levels of each side of a true book, as (price, size) pairs."""
    return [(p, q) for p, q in bids[:depth]], [(p, q) for p, q in asks[:depth]]
