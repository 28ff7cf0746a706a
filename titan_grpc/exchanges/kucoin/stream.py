"""KuCoin public WebSocket streams.

Every connection starts with ``POST /api/v1/bullet-public`` (a token, the server to use,
and the ping interval/timeout the venue expects), so each reconnect asks afresh. After the
``welcome`` frame each topic is subscribed with ``response: true`` and its ``ack`` awaited.
KuCoin has no protocol-level pings: a JSON ``ping`` goes out every ``pingInterval`` and
silence beyond interval + timeout means the connection is dead.

Quotes: ``/market/ticker:SYM`` (best bid/ask with sizes, last price, ``sequence``), seeded
from the REST ticker on every connect. Books: ``/market/level2:SYM`` changes
``[price, size, sequence]`` with ``sequenceStart``/``sequenceEnd``; the market layer keeps
the book and realigns it from the REST ``level2_100`` snapshot's ``sequence``.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from titan_grpc.domain import (
    BookDiff,
    FeedInterrupted,
    OrderBook,
    PriceLevel,
    Quote,
    Ticker,
)
from titan_grpc.exchanges.kucoin.parse import decimal, from_ms
from titan_grpc.exchanges.streaming import (
    FRAME_ERRORS,
    FrameStats,
    QuoteUpdate,
    SequencedBookFeed,
    quote_feed,
)
from titan_grpc.net.ws import (
    WebSocketClient,
    WsConnection,
    WsEndpoint,
    WsHandshakeError,
)

VENUE = "kucoin"
SNAPSHOT_DEPTH = 100  # level2_100: the deepest public snapshot (the full book needs keys)


class BulletProtocol:
    """The WsProtocol of one KuCoin public topic."""

    def __init__(self, topic: str, fetch_bullet: Callable[[], Awaitable[Any]]) -> None:
        self._topic = topic
        self._fetch_bullet = fetch_bullet
        self._ids = itertools.count(1)

    async def endpoint(self) -> WsEndpoint:
        bullet = await self._fetch_bullet()
        try:
            server = bullet["instanceServers"][0]
            url = f"{server['endpoint']}?token={bullet['token']}&connectId={uuid.uuid4().hex}"
            interval = int(server["pingInterval"]) / 1000
            timeout = int(server["pingTimeout"]) / 1000
        except FRAME_ERRORS as error:
            reason = f"unusable bullet-public answer ({type(error).__name__})"
            raise WsHandshakeError(reason) from None
        return WsEndpoint(
            url, app_ping_interval_seconds=interval, idle_timeout_seconds=interval + timeout
        )

    async def open(self, connection: WsConnection) -> None:
        welcome = await connection.receive_json()
        if not isinstance(welcome, dict) or welcome.get("type") != "welcome":
            raise WsHandshakeError(f"expected welcome, got {str(welcome)[:80]}")
        request_id = str(next(self._ids))
        await connection.send_json(
            {
                "id": request_id,
                "type": "subscribe",
                "topic": self._topic,
                "privateChannel": False,
                "response": True,
            }
        )
        while True:
            answer = await connection.receive_json()
            if not isinstance(answer, dict) or answer.get("id") != request_id:
                continue  # data for other topics, pongs
            if answer.get("type") == "ack":
                return
            raise WsHandshakeError(f"subscribe refused: {str(answer.get('data'))[:120]}")

    def ping_message(self) -> Any:
        return {"id": str(next(self._ids)), "type": "ping"}


def _client(topic: str, fetch_bullet: Callable[[], Awaitable[Any]]) -> WebSocketClient:
    # No protocol-level heartbeat: KuCoin's own JSON ping/pong and the idle timeout do it.
    return WebSocketClient(VENUE, BulletProtocol(topic, fetch_bullet), heartbeat_seconds=None)


def _data(frame: Any, topic: str) -> Any:
    if frame.get("type") != "message" or frame.get("topic") != topic:
        return None
    return frame["data"]


def read_ticker_frame(topic: str, frame: Any) -> QuoteUpdate | None:
    data = _data(frame, topic)
    if data is None:
        return None
    return QuoteUpdate(
        sequence=int(data["sequence"]),
        bid=decimal(data["bestBid"]),
        bid_size=decimal(data["bestBidSize"]),
        ask=decimal(data["bestAsk"]),
        ask_size=decimal(data["bestAskSize"]),
        last=decimal(data["price"]),
        venue_time=from_ms(data.get("time")),
    )


def watch_quotes(
    venue_symbol: str,
    fetch_bullet: Callable[[], Awaitable[Any]],
    fetch_ticker: Callable[[], Awaitable[Ticker]],
    stats: FrameStats,
) -> AsyncIterator[Quote | FeedInterrupted]:
    topic = f"/market/ticker:{venue_symbol}"
    events = _client(topic, fetch_bullet).events()
    read = functools.partial(read_ticker_frame, topic)
    return quote_feed(VENUE, events, fetch_ticker, read, stats)


def _changes(rows: Any) -> tuple[PriceLevel, ...]:
    # A change at price 0 only advances the sequence (KuCoin sends those); no level moves.
    levels = (PriceLevel(decimal(row[0]), decimal(row[1])) for row in rows)
    return tuple(level for level in levels if level.price != 0)


def read_level2_frame(topic: str, frame: Any) -> BookDiff | None:
    data = _data(frame, topic)
    if data is None:
        return None
    return BookDiff(
        first_sequence=int(data["sequenceStart"]),
        last_sequence=int(data["sequenceEnd"]),
        bids=_changes(data["changes"]["bids"]),
        asks=_changes(data["changes"]["asks"]),
        venue_time=from_ms(data.get("time")),
    )


def book_feed(
    venue_symbol: str,
    fetch_bullet: Callable[[], Awaitable[Any]],
    fetch_snapshot: Callable[[], Awaitable[OrderBook]],
    stats: FrameStats,
) -> SequencedBookFeed:
    """level2 changes realigned from the REST ``level2_100`` snapshot's ``sequence``."""
    topic = f"/market/level2:{venue_symbol}"
    return SequencedBookFeed(
        VENUE,
        venue_symbol,
        _client(topic, fetch_bullet).events,
        functools.partial(read_level2_frame, topic),
        fetch_snapshot,
        stats,
    )
