"""Binance public WebSocket streams.

Quotes: ``<sym>@bookTicker`` (best bid/ask, update id ``u``) and ``<sym>@trade`` (last
price) on one combined connection, seeded from the REST ticker on every connect so a
quiet market still answers at once. Books: ``<sym>@depth@100ms`` diff events
``{U, u, b, a}``; the market layer keeps the book and realigns it from the REST depth
snapshot (``lastUpdateId``) as Binance documents. Stream names are lower-case; the
streams are named in the URL, so reconnecting re-subscribes. Binance pings every ~20 s
(aiohttp answers) and ends connections after 24 h (a reconnect like any other).

The account's private feed is on the WebSocket API host (the listenKey endpoints are
retired): ``userDataStream.subscribe.signature`` signed like any SIGNED WebSocket API
request, then ``{"subscriptionId", "event"}`` frames: ``executionReport`` (orders, fills)
and ``outboundAccountPosition`` (balances). ``eventStreamTerminated`` ends the
subscription: the connection is dropped and reopened (a gap, caught up by REST).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from titan_grpc.domain import (
    AccountEvent,
    AccountFeedConnected,
    BookDiff,
    FeedInterrupted,
    Market,
    OrderBook,
    Quote,
    Ticker,
)
from titan_grpc.exchanges.binance.auth import signed_ws_params
from titan_grpc.exchanges.binance.parse import (
    decimal,
    from_ms,
    levels,
    parse_account_position,
    parse_execution_report,
)
from titan_grpc.exchanges.streaming import (
    FRAME_ERRORS,
    FrameStats,
    QuoteUpdate,
    SequencedBookFeed,
    quote_feed,
)
from titan_grpc.net.ws import (
    WebSocketClient,
    WsConnected,
    WsConnection,
    WsEndpoint,
    WsGap,
    WsHandshakeError,
    WsUnreadable,
)

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


class UserDataStream:
    """The WsProtocol of the private feed: one signed ``userDataStream.subscribe.signature``
    per connection (a fresh timestamp each time), answered before any event."""

    def __init__(
        self,
        ws_api_url: str,
        credentials: Callable[[], tuple[str, str]],
        timestamp_ms: Callable[[], int],
    ) -> None:
        self._url = ws_api_url
        self._credentials = credentials
        self._timestamp_ms = timestamp_ms
        self._ids = itertools.count(1)

    async def endpoint(self) -> WsEndpoint:
        return WsEndpoint(self._url)

    async def open(self, connection: WsConnection) -> None:
        api_key, secret = self._credentials()
        request_id = f"titan-uds-{next(self._ids)}"
        params = signed_ws_params({}, api_key, secret, self._timestamp_ms())
        await connection.send_json(
            {"id": request_id, "method": "userDataStream.subscribe.signature", "params": params}
        )
        while True:
            answer = await connection.receive_json()
            if isinstance(answer, dict) and answer.get("id") == request_id:
                break
        if answer.get("status") != 200:
            error = answer.get("error") or {}
            raise WsHandshakeError(
                f"userDataStream.subscribe.signature refused: {error.get('code')} "
                f"{error.get('msg', '')}".strip()
            )

    def ping_message(self) -> Any:
        return None


def read_user_frame(frame: Any, markets: Mapping[str, Market]) -> AccountEvent | str | None:
    """An account event, ``"terminated"`` when the venue ended the subscription, or None
    for frames that are neither (answers, unknown events, markets TITAN does not list)."""
    if not isinstance(frame, dict) or "event" not in frame:
        return None
    event = frame["event"]
    kind = event.get("e")
    if kind == "executionReport":
        market = markets.get(str(event["s"]))
        return parse_execution_report(event, market) if market is not None else None
    if kind == "outboundAccountPosition":
        return parse_account_position(event)
    if kind == "eventStreamTerminated":
        return "terminated"
    return None  # balanceUpdate (a delta) is followed by outboundAccountPosition


async def watch_account(
    ws_api_url: str,
    credentials: Callable[[], tuple[str, str]],
    timestamp_ms: Callable[[], int],
    markets: Callable[[], Awaitable[Mapping[str, Market]]],
    stats: FrameStats,
) -> AsyncIterator[AccountEvent | AccountFeedConnected | FeedInterrupted]:
    client = WebSocketClient(
        VENUE,
        UserDataStream(ws_api_url, credentials, timestamp_ms),
        heartbeat_seconds=HEARTBEAT_SECONDS,
    )
    by_venue_symbol = await markets()
    async for event in client.events():
        if isinstance(event, WsGap):
            yield FeedInterrupted(event.reason)
            continue
        if isinstance(event, WsConnected):
            yield AccountFeedConnected()
            continue
        if isinstance(event, WsUnreadable):
            # No sequence numbers: a frame we could not read may have been a fill.
            await client.reconnect("unreadable private frame")
            continue
        try:
            item = read_user_frame(event.data, by_venue_symbol)
        except FRAME_ERRORS as error:
            stats.skip(VENUE, "user data", error)
            await client.reconnect("malformed private frame")  # caught up after reconnect
            continue
        if item == "terminated":
            await client.reconnect("user data stream terminated by the venue")
        elif item is not None and not isinstance(item, str):
            yield item
