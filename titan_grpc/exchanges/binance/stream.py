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
    BookSnapshot,
    FeedInterrupted,
    OrderBook,
    PriceLevel,
    Quote,
    Ticker,
)
from titan_grpc.exchanges.binance.parse import decimal, from_ms
from titan_grpc.exchanges.streaming import FRAME_ERRORS, FrameStats, QuoteState
from titan_grpc.net.ws import WebSocketClient, WsConnected, WsEndpoint, WsGap, WsUnreadable

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


def _levels(rows: Any) -> tuple[PriceLevel, ...]:
    return tuple(PriceLevel(decimal(price), decimal(qty)) for price, qty in rows)


async def watch_quotes(
    ws_url: str,
    venue_symbol: str,
    fetch_ticker: Callable[[], Awaitable[Ticker]],
    stats: FrameStats,
) -> AsyncIterator[Quote | FeedInterrupted]:
    name = venue_symbol.lower()
    client = _client(ws_url, [f"{name}@bookTicker", f"{name}@trade"])
    state: QuoteState | None = None
    last_update_id = 0
    async for event in client.events():
        if isinstance(event, WsUnreadable):
            continue  # update ids / sequences show whether it mattered
        if isinstance(event, WsGap):  # once per outage, the first failed connect too
            state = None
            yield FeedInterrupted(event.reason)
            continue
        if isinstance(event, WsConnected):
            state, last_update_id = QuoteState.from_ticker(await fetch_ticker()), 0
            yield state.quote
            continue
        if state is None:
            continue
        stream = ""
        try:
            stream, payload = str(event.data["stream"]), event.data["data"]
            if stream.endswith("@bookTicker"):
                update_id = int(payload["u"])
                if update_id <= last_update_id:
                    continue  # older than what we already show
                last_update_id = update_id
                quote = state.update(
                    bid=decimal(payload["b"]),
                    bid_size=decimal(payload["B"]),
                    ask=decimal(payload["a"]),
                    ask_size=decimal(payload["A"]),
                )
            elif stream.endswith("@trade"):
                quote = state.update(last=decimal(payload["p"]), venue_time=from_ms(payload["T"]))
            else:
                continue
        except FRAME_ERRORS as error:
            stats.skip(VENUE, stream or "unnamed", error)
            continue
        if quote is not None:
            yield quote


class BinanceBookFeed:
    """The BookFeed of one market: depth diffs in, REST snapshots to realign."""

    def __init__(
        self,
        ws_url: str,
        venue_symbol: str,
        fetch_snapshot: Callable[[], Awaitable[OrderBook]],
        stats: FrameStats,
        note: str = "",
    ) -> None:
        self.venue_symbol, self.note = venue_symbol, note
        self._ws_url = ws_url
        self._fetch_snapshot = fetch_snapshot
        self._stats = stats

    async def updates(self) -> AsyncIterator[BookDiff | BookSnapshot | FeedInterrupted]:
        client = _client(self._ws_url, [f"{self.venue_symbol.lower()}@depth@100ms"])
        async for event in client.events():
            if isinstance(event, WsUnreadable):
                continue  # the next diff's sequence shows whether it mattered
            if isinstance(event, WsGap):
                yield FeedInterrupted(event.reason)
                continue
            if isinstance(event, WsConnected):
                # Subscribed first, then the snapshot: every diff after it is queued on
                # the connection, and a quiet market is served at once.
                yield await self.resync()
                continue
            try:
                payload = event.data["data"]
                if payload.get("e") != "depthUpdate":
                    continue
                diff = BookDiff(
                    first_sequence=int(payload["U"]),
                    last_sequence=int(payload["u"]),
                    bids=_levels(payload["b"]),
                    asks=_levels(payload["a"]),
                    venue_time=from_ms(payload.get("E")),
                )
            except FRAME_ERRORS as error:
                self._stats.skip(VENUE, "depthUpdate", error)
                continue
            yield diff

    async def resync(self) -> BookSnapshot:
        book = await self._fetch_snapshot()
        return BookSnapshot(book.bids, book.asks, book.sequence, book.venue_time)
