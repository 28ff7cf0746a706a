"""WebSocketClient against a loopback WebSocket server: events, reconnects, failures."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.ws import FakeFeedServer, FeedConnection
from titan_grpc.errors import ExchangeUnavailable
from titan_grpc.net.ws import (
    WebSocketClient,
    WsConnected,
    WsConnection,
    WsEndpoint,
    WsEvent,
    WsGap,
    WsHandshakeError,
    WsMessage,
    WsUnreadable,
)

TOPIC = "prices"


class Protocol:
    """Subscribes to TOPIC; the endpoint can be made to fail."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.endpoint_failures = 0
        self.opens = 0

    async def endpoint(self) -> WsEndpoint:
        if self.endpoint_failures:
            self.endpoint_failures -= 1
            raise ExchangeUnavailable("token endpoint down", exchange="test")
        return WsEndpoint(self.url)

    async def open(self, connection: WsConnection) -> None:
        self.opens += 1
        await connection.send_json({"op": "subscribe", "topic": TOPIC})
        answer = await connection.receive_json()
        if answer.get("ok") is not True:
            raise WsHandshakeError("refused")

    def ping_message(self) -> Any:
        return {"op": "ping"}


class Server:
    def __init__(self) -> None:
        self.refuse = 0
        self.mute = False  # accept connections, never answer
        self.feed = FakeFeedServer("/ws", self._greet, self._answer)

    async def _greet(self, connection: FeedConnection, request: web.Request) -> None:
        return None

    async def _answer(self, connection: FeedConnection, frame: Any) -> None:
        if frame.get("op") != "subscribe" or self.mute:
            return
        if self.refuse:
            self.refuse -= 1
            await connection.send({"ok": False})
            return
        connection.topics.add(frame["topic"])
        await connection.send({"ok": True})


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    fake = Server()
    await fake.feed.start()
    try:
        yield fake
    finally:
        await fake.feed.stop()


def client(protocol: Protocol, handshake_timeout: float = 10.0) -> WebSocketClient:
    return WebSocketClient(
        "test",
        protocol,
        handshake_timeout_seconds=handshake_timeout,
        base_backoff_seconds=0.001,
        max_backoff_seconds=0.01,
        rng=random.Random(1),
    )


async def next_event(events: AsyncIterator[WsEvent]) -> WsEvent:
    return await anext(events)


async def test_messages_gaps_and_resubscription(server: Server) -> None:
    protocol = Protocol(f"{server.feed.url}/ws")
    ws = client(protocol)
    events = ws.events()
    assert await next_event(events) == WsConnected(reconnect=False)
    await server.feed.wait_until(lambda: server.feed.subscribers(TOPIC) == 1)
    await server.feed.publish(TOPIC, {"n": 1})
    assert await next_event(events) == WsMessage({"n": 1})
    server.feed.faults.garbage = 1
    await server.feed.publish(TOPIC, {"n": 2})
    assert await next_event(events) == WsUnreadable()
    assert ws.stats.malformed_frames == 1
    await server.feed.drop_all()
    gap = await next_event(events)
    assert isinstance(gap, WsGap) and "1011" in gap.reason
    # Reconnected and subscribed again before anything is handed on.
    assert await next_event(events) == WsConnected(reconnect=True)
    assert protocol.opens == 2 and server.feed.subscribers(TOPIC) == 1
    await server.feed.publish(TOPIC, {"n": 3})
    assert await next_event(events) == WsMessage({"n": 3})
    await events.aclose()  # type: ignore[attr-defined]
    await server.feed.wait_until(lambda: not server.feed.connections)


async def test_repeated_failures_report_one_gap_then_recover(server: Server) -> None:
    protocol = Protocol(f"{server.feed.url}/ws")
    protocol.endpoint_failures = 2
    server.refuse = 2
    ws = client(protocol)
    events = ws.events()
    first = await next_event(events)
    assert isinstance(first, WsGap) and first.reason == "token endpoint down"
    # Two more endpoint failures and two refused subscriptions: no further gap events.
    assert await next_event(events) == WsConnected(reconnect=False)
    assert protocol.opens == 3 and ws.stats.gaps == 1
    await events.aclose()  # type: ignore[attr-defined]


async def test_failure_reasons_never_carry_the_url_token() -> None:
    async def forbidden(request: web.Request) -> web.Response:
        return web.Response(status=403)

    app = web.Application()
    app.router.add_get("/ws", forbidden)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        ws = client(Protocol(f"ws://127.0.0.1:{port}/ws?token=sekrit-token-123"))
        events = ws.events()
        gap = await next_event(events)
        assert isinstance(gap, WsGap)
        assert "403" in gap.reason and "sekrit" not in gap.reason
        await events.aclose()  # type: ignore[attr-defined]
    finally:
        await runner.cleanup()


async def test_a_venue_that_never_answers_the_subscription_times_out(server: Server) -> None:
    server.mute = True
    ws = client(Protocol(f"{server.feed.url}/ws"), handshake_timeout=0.2)
    events = ws.events()
    gap = await next_event(events)
    assert isinstance(gap, WsGap) and gap.reason.startswith("TimeoutError")
    server.mute = False
    assert await next_event(events) == WsConnected(reconnect=False)
    await events.aclose()  # type: ignore[attr-defined]
    # The muted connections were closed by the client, not left open.
    await server.feed.wait_until(lambda: not server.feed.connections)


async def test_an_unusable_address_is_reported_without_its_token() -> None:
    ws = client(Protocol("wss://[not-a-host?token=sekrit-token-123"))
    events = ws.events()
    gap = await next_event(events)
    assert isinstance(gap, WsGap) and "sekrit" not in gap.reason
    await events.aclose()  # type: ignore[attr-defined]
