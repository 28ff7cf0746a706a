"""A WebSocket client on aiohttp that keeps one venue feed alive; knows no exchange.

A venue gives it a ``WsProtocol``: where to connect (asked again on every reconnect, so a
venue that hands out tokens per connection gets a fresh one), what to send once connected
(handshake and subscriptions — sent again after every reconnect) and, if the venue wants
application-level pings, what a ping looks like.

The client yields events, never raises for a dropped connection:

* ``WsConnected`` after each successful connect + subscribe (``reconnect`` is True from
  the second one on: anything derived from the old connection must be rebuilt);
* ``WsMessage`` for each JSON text frame, ``WsUnreadable`` for a text frame that is not
  JSON (skipped; venues with sequence numbers notice on their own if it carried data);
* ``WsGap`` once when a live connection is lost (or the first connect fails): data may
  have been missed. It then reconnects with exponential backoff and full jitter.

Liveness: WebSocket protocol pings every ``heartbeat_seconds`` (a missing pong closes the
connection), server pings answered automatically, optional application pings, and an
optional idle timeout (no frame at all for that long means the feed is dead — venues with
a heartbeat channel or ping/pong replies use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from titan_grpc.errors import TitanError
from titan_grpc.net.rest import USER_AGENT

log = logging.getLogger("titan_grpc.upstream")


@dataclass(frozen=True, slots=True)
class WsEndpoint:
    url: str = field(repr=False)  # may carry a venue token
    app_ping_interval_seconds: float | None = None
    idle_timeout_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class WsConnected:
    reconnect: bool


@dataclass(frozen=True, slots=True)
class WsMessage:
    data: Any


@dataclass(frozen=True, slots=True)
class WsGap:
    reason: str


@dataclass(frozen=True, slots=True)
class WsUnreadable:
    """A frame that is not JSON: skipped, but a venue without sequence numbers must
    assume it carried data and realign."""


WsEvent = WsConnected | WsMessage | WsGap | WsUnreadable


class WsConnection(Protocol):
    async def send_json(self, data: Any) -> None: ...

    async def receive_json(self) -> Any: ...


class WsProtocol(Protocol):
    async def endpoint(self) -> WsEndpoint:
        """Where to connect now (may fetch a token)."""
        ...

    async def open(self, connection: WsConnection) -> None:
        """Handshake and subscribe on a fresh connection; raise if the venue refuses."""
        ...

    def ping_message(self) -> Any:
        """The application-level ping to send (only asked when the endpoint sets an interval)."""
        ...


class WsHandshakeError(Exception):
    """The venue answered the handshake or a subscription with an error."""


class _Connection:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def send_json(self, data: Any) -> None:
        await self._ws.send_str(json.dumps(data, separators=(",", ":")))

    async def receive_json(self) -> Any:
        while True:
            message = await self._ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                try:
                    return json.loads(message.data)
                except ValueError:
                    continue
            if message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.PONG):
                continue
            raise ConnectionError(f"closed during handshake ({message.type.name})")


@dataclass
class WsStats:
    connects: int = 0
    gaps: int = 0
    malformed_frames: int = 0
    messages: int = 0


class WebSocketClient:
    def __init__(
        self,
        name: str,
        protocol: WsProtocol,
        *,
        heartbeat_seconds: float | None = 20.0,
        handshake_timeout_seconds: float = 10.0,
        base_backoff_seconds: float = 0.25,
        max_backoff_seconds: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self._protocol = protocol
        self._heartbeat = heartbeat_seconds
        self._handshake_timeout = handshake_timeout_seconds
        self._base_backoff = base_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._rng = rng or random.Random()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closed_by_us = ""
        self.stats = WsStats()

    async def reconnect(self, reason: str) -> None:
        """Drop the current connection (the consumer lost track, e.g. an unparseable
        update with no sequence to resync from); ``events`` yields a gap and reconnects."""
        log.warning("%s websocket: reconnecting (%s)", self.name, reason)
        if self._ws is not None and not self._ws.closed:
            self._closed_by_us = reason
            await self._ws.close()

    async def events(self) -> AsyncIterator[WsEvent]:
        failures = 0
        live = True  # report the very first failure too: the feed is not there
        connected_before = False
        async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
            while True:
                reason = ""
                ws: aiohttp.ClientWebSocketResponse | None = None
                try:
                    endpoint = await self._protocol.endpoint()
                    # Connecting and subscribing share one deadline: a venue that accepts
                    # the TCP connection and then says nothing must not hold the feed.
                    async with asyncio.timeout(self._handshake_timeout):
                        ws = await session.ws_connect(
                            endpoint.url,
                            heartbeat=self._heartbeat,
                            autoping=True,
                            timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                        )
                        self._ws, self._closed_by_us = ws, ""
                        await self._protocol.open(_Connection(ws))
                    self.stats.connects += 1
                    yield WsConnected(reconnect=connected_before)
                    connected_before, live = True, True
                    async for event in self._receive(ws, endpoint):
                        failures = 0  # data flows again: the next drop starts afresh
                        yield event
                    reason = self._closed_by_us or f"closed by venue (code {ws.close_code})"
                except asyncio.CancelledError:
                    raise
                except (
                    aiohttp.ClientError,
                    OSError,
                    TimeoutError,
                    WsHandshakeError,
                    TitanError,  # the venue's REST call for the endpoint (token) failed
                ) as error:
                    reason = _describe(error)
                finally:
                    self._ws = None
                    if ws is not None:
                        await ws.close()
                failures += 1
                if live:
                    live = False
                    self.stats.gaps += 1
                    log.warning("%s websocket lost: %s", self.name, reason)
                    yield WsGap(reason)
                ceiling = min(self._max_backoff, self._base_backoff * 2 ** (failures - 1))
                await asyncio.sleep(self._rng.uniform(0, ceiling))

    async def _receive(
        self, ws: aiohttp.ClientWebSocketResponse, endpoint: WsEndpoint
    ) -> AsyncIterator[WsEvent]:
        pinger: asyncio.Task[None] | None = None
        if endpoint.app_ping_interval_seconds:
            pinger = asyncio.create_task(self._ping(ws, endpoint.app_ping_interval_seconds))
        try:
            while True:
                message = await ws.receive(timeout=endpoint.idle_timeout_seconds)
                if message.type == aiohttp.WSMsgType.TEXT:
                    try:
                        data = json.loads(message.data)
                    except ValueError:
                        self.stats.malformed_frames += 1
                        log.warning("%s websocket: skipped a frame that is not JSON", self.name)
                        yield WsUnreadable()
                        continue
                    self.stats.messages += 1
                    yield WsMessage(data)
                elif message.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    return
                else:
                    self.stats.malformed_frames += 1
        finally:
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pinger

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse, interval: float) -> None:
        connection = _Connection(ws)
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            while not ws.closed:
                await asyncio.sleep(interval)
                await connection.send_json(self._protocol.ping_message())


def _describe(error: BaseException) -> str:
    # These two carry the URL in str(), and with it any connection token.
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{type(error).__name__}: HTTP {error.status}"
    if isinstance(error, aiohttp.InvalidURL):
        return "InvalidURL: the WebSocket address is not a usable URL"
    if isinstance(error, TitanError):
        return error.message
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
