"""Coinbase Exchange public WebSocket feed (``ws-feed``).

Each connection sends one ``subscribe`` naming the product and the channels, with
``heartbeat`` among them: a heartbeat arrives every second, so a few seconds of silence
mean the feed is dead and the client reconnects (and so re-subscribes).

Quotes: the ``ticker`` channel (best bid/ask with sizes, last price, ``sequence`` to drop
out-of-order messages), seeded from the REST ticker on every connect. Books:
``level2`` when keys are configured (its subscription must be signed) or else the public
``level2_batch`` (the same messages, batched) sends a ``snapshot`` on subscribe and then
``l2update`` changes ``[side, price, size]``. Those carry no sequence number, so a lost
update cannot be detected from the data: realigning means re-subscribing for a fresh
snapshot, which is what happens after any unreadable update and after every reconnect.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from titan_grpc.domain import (
    BookDiff,
    BookSnapshot,
    FeedInterrupted,
    PriceLevel,
    Quote,
    Ticker,
)
from titan_grpc.exchanges.coinbase.parse import decimal, levels, parse_time
from titan_grpc.exchanges.streaming import FRAME_ERRORS, FrameStats, QuoteUpdate, quote_feed
from titan_grpc.net.ws import (
    WebSocketClient,
    WsConnected,
    WsConnection,
    WsEndpoint,
    WsGap,
    WsHandshakeError,
    WsUnreadable,
)

VENUE = "coinbase"
HEARTBEAT_SILENCE_SECONDS = 5.0  # five missed one-second heartbeats


class FeedSubscription:
    """The WsProtocol of one product on ws-feed: subscribe, await the confirmation."""

    def __init__(
        self,
        ws_url: str,
        product: str,
        channels: Sequence[str],
        idle_timeout: float,
        authenticate: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self._url, self._product, self._channels = ws_url, product, list(channels)
        self._idle_timeout = idle_timeout
        self._authenticate = authenticate

    async def endpoint(self) -> WsEndpoint:
        return WsEndpoint(self._url, idle_timeout_seconds=self._idle_timeout)

    async def open(self, connection: WsConnection) -> None:
        subscribe: dict[str, Any] = {
            "type": "subscribe",
            "product_ids": [self._product],
            "channels": self._channels,
        }
        if self._authenticate is not None:  # signed afresh on every connect
            subscribe.update(self._authenticate())
        await connection.send_json(subscribe)
        while True:
            answer = await connection.receive_json()
            kind = answer.get("type") if isinstance(answer, dict) else None
            if kind == "subscriptions":
                return
            if kind == "error":
                detail = f"{answer.get('message', '')}: {answer.get('reason', '')}"
                raise WsHandshakeError(f"subscribe refused ({detail[:160]})")

    def ping_message(self) -> Any:
        return None


def _client(
    ws_url: str,
    product: str,
    channels: Sequence[str],
    idle_timeout: float,
    authenticate: Callable[[], dict[str, str]] | None = None,
) -> WebSocketClient:
    protocol = FeedSubscription(
        ws_url, product, [*channels, "heartbeat"], idle_timeout, authenticate
    )
    return WebSocketClient(VENUE, protocol)


def read_ticker_frame(product: str, frame: Any) -> QuoteUpdate | None:
    if frame.get("type") != "ticker" or frame.get("product_id") != product:
        return None
    return QuoteUpdate(
        sequence=int(frame["sequence"]),
        bid=decimal(frame["best_bid"]),
        bid_size=decimal(frame["best_bid_size"]),
        ask=decimal(frame["best_ask"]),
        ask_size=decimal(frame["best_ask_size"]),
        last=decimal(frame["price"]),
        venue_time=parse_time(frame.get("time")),
    )


def watch_quotes(
    ws_url: str,
    product: str,
    fetch_ticker: Callable[[], Awaitable[Ticker]],
    stats: FrameStats,
    idle_timeout: float = HEARTBEAT_SILENCE_SECONDS,
) -> AsyncIterator[Quote | FeedInterrupted]:
    events = _client(ws_url, product, ["ticker"], idle_timeout).events()
    read = functools.partial(read_ticker_frame, product)
    return quote_feed(VENUE, events, fetch_ticker, read, stats)


class CoinbaseBookFeed:
    """The BookFeed of one product: the venue's snapshot and changes, all in-band.

    level2 data has no sequence numbers, so the feed numbers the updates of each
    subscription itself (the snapshot is 0): the book sees a consecutive stream, and a
    realignment is a re-subscription that starts a new snapshot."""

    def __init__(
        self,
        ws_url: str,
        product: str,
        stats: FrameStats,
        note: str = "",
        idle_timeout: float = HEARTBEAT_SILENCE_SECONDS,
        authenticate: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.venue_symbol, self.note = product, note
        # With keys, the real-time level2 channel (it needs a signed subscription);
        # without, level2_batch: the same messages, batched by the venue.
        channel = "level2" if authenticate is not None else "level2_batch"
        self._client = _client(ws_url, product, [channel], idle_timeout, authenticate)
        self._stats = stats

    async def updates(self) -> AsyncIterator[BookDiff | BookSnapshot | FeedInterrupted]:
        numbers = itertools.count(1)
        async for event in self._client.events():
            if isinstance(event, WsGap):
                yield FeedInterrupted(event.reason)
                continue
            if isinstance(event, WsConnected):
                continue
            if isinstance(event, WsUnreadable):
                # It may have been an update, and nothing later would tell.
                await self._client.reconnect("unreadable frame on the level2 feed")
                continue
            data = event.data
            try:
                kind = data.get("type")
                if data.get("product_id") != self.venue_symbol:
                    continue
                if kind == "snapshot":
                    numbers = itertools.count(1)
                    yield BookSnapshot(levels(data["bids"]), levels(data["asks"]), 0, None)
                    continue
                if kind != "l2update":
                    continue
                bids, asks = [], []
                for side, price, size in data["changes"]:
                    level = PriceLevel(decimal(price), decimal(size))
                    if side == "buy":
                        bids.append(level)
                    elif side == "sell":
                        asks.append(level)
                    else:
                        raise ValueError("side")
                number = next(numbers)
                diff = BookDiff(number, number, tuple(bids), tuple(asks), parse_time(data["time"]))
            except FRAME_ERRORS as error:
                # An update we cannot read is an update we lost, and nothing later would
                # tell: start over from a fresh snapshot.
                self._stats.skip(VENUE, "level2", error)
                await self._client.reconnect("unreadable level2 update")
                continue
            yield diff

    async def resync(self) -> None:
        await self._client.reconnect("book lost sync")
        return None
