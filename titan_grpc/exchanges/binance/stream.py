"""Binance public WebSocket streams.

Quotes: ``<sym>@bookTicker`` (best bid/ask, update id ``u``) and ``<sym>@trade`` (last
price) on one combined connection, seeded from the REST ticker on every connect so a
quiet market still answers at once. Books: ``<sym>@depth@100ms`` diff events
``{U, u, b, a}``; the market layer keeps the book and realigns it from the REST depth
snapshot (``lastUpdateId``) as Binance documents. Stream names are lower-case; the
streams are named in the URL, so reconnecting re-subscribes. Binance pings every ~20 s
(aiohttp answers) and ends connections after 24 h (a reconnect like any other).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from titan_grpc.domain import (
    BookDiff,
    FeedInterrupted,
    OrderBook,
    Quote,
    Ticker,
)
from titan_grpc.exchanges.binance.parse import decimal, from_ms, levels
from titan_grpc.exchanges.streaming import (
    FrameStats,
    QuoteUpdate,
    SequencedBookFeed,
    quote_feed,
)
from titan_grpc.net.ws import WebSocketClient, WsEndpoint

VENUE = "binance"
SNAPSHOT_DEPTH = 1000  # deep enough that removals near the top never expose unknown levels
HEARTBEAT_SECONDS = 20.0


class CombinedStreams:
    """The WsProtocol of ``/stream?streams=a/b``: nothing to send after connecting."""

    def __init__(self, ws_url: str, streams: Sequence[str]) -> None:
        self._url = f"{ws_url.rstrip('/')}/stream?streams={'/'.join(streams)}"

    async def endpoint(self) -> WsEndpoint:
        return WsEndpoint(self._url)

    async def open(self, connection: Any) -> None:
        return None

    def ping_message(self) -> Any:
        return None


def _client(ws_url: str, streams: Sequence[str]) -> WebSocketClient:
    return WebSocketClient(
        VENUE, CombinedStreams(ws_url, streams), heartbeat_seconds=HEARTBEAT_SECONDS
    )


def read_quote_frame(frame: Any) -> QuoteUpdate | None:
    stream, payload = str(frame["stream"]), frame["data"]
    if stream.endswith("@bookTicker"):
        return QuoteUpdate(
            sequence=int(payload["u"]),
            bid=decimal(payload["b"]),
            bid_size=decimal(payload["B"]),
            ask=decimal(payload["a"]),
            ask_size=decimal(payload["A"]),
        )
    if stream.endswith("@trade"):
        return QuoteUpdate(last=decimal(payload["p"]), venue_time=from_ms(payload["T"]))
    return None


def watch_quotes(
    ws_url: str,
    venue_symbol: str,
    fetch_ticker: Callable[[], Awaitable[Ticker]],
    stats: FrameStats,
) -> AsyncIterator[Quote | FeedInterrupted]:
    name = venue_symbol.lower()
    client = _client(ws_url, [f"{name}@bookTicker", f"{name}@trade"])
    return quote_feed(VENUE, client.events(), fetch_ticker, read_quote_frame, stats)


def read_depth_frame(frame: Any) -> BookDiff | None:
    payload = frame["data"]
    if payload.get("e") != "depthUpdate":
        return None
    return BookDiff(
        first_sequence=int(payload["U"]),
        last_sequence=int(payload["u"]),
        bids=levels(payload["b"]),
        asks=levels(payload["a"]),
        venue_time=from_ms(payload.get("E")),
    )


def book_feed(
    ws_url: str,
    venue_symbol: str,
    fetch_snapshot: Callable[[], Awaitable[OrderBook]],
    stats: FrameStats,
) -> SequencedBookFeed:
    """Depth diffs ``{U, u, b, a}`` realigned from the REST depth snapshot's
    ``lastUpdateId``, as Binance documents for a local book."""
    client = _client(ws_url, [f"{venue_symbol.lower()}@depth@100ms"])
    return SequencedBookFeed(
        VENUE, venue_symbol, client.events, read_depth_frame, fetch_snapshot, stats
    )
