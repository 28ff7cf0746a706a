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

The account's private feed is the authenticated ``user`` channel: the ``full`` channel's
messages for our own orders (received, open, match, change, done), turned into order
states here; it carries no sequence the feed could check, so anything unreadable
reconnects and the REST catch-up restates what changed.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from titan_grpc.domain import (
    MONEY_CONTEXT,
    ZERO,
    AccountEvent,
    AccountFeedConnected,
    BalanceUpdate,
    BookDiff,
    BookSnapshot,
    FeedInterrupted,
    Fill,
    Liquidity,
    Market,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PriceLevel,
    Quote,
    Side,
    Ticker,
    TimeInForce,
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


class UserChannelSubscription:
    """The WsProtocol of the authenticated ``user`` channel (EXCHANGES-REFERENCE 2.8):
    the account's own orders on every listed product, signed afresh on every connect,
    with ``heartbeat`` on one product for liveness."""

    def __init__(
        self,
        ws_url: str,
        products: Callable[[], Awaitable[list[str]]],
        authenticate: Callable[[], dict[str, str]],
        idle_timeout: float,
    ) -> None:
        self._url, self._products = ws_url, products
        self._authenticate, self._idle_timeout = authenticate, idle_timeout

    async def endpoint(self) -> WsEndpoint:
        return WsEndpoint(self._url, idle_timeout_seconds=self._idle_timeout)

    async def open(self, connection: WsConnection) -> None:
        products = await self._products()
        subscribe: dict[str, Any] = {
            "type": "subscribe",
            "product_ids": products,
            "channels": ["user", {"name": "heartbeat", "product_ids": products[:1]}],
            **self._authenticate(),
        }
        await connection.send_json(subscribe)
        while True:
            answer = await connection.receive_json()
            kind = answer.get("type") if isinstance(answer, dict) else None
            if kind == "subscriptions":
                return
            if kind == "error":
                detail = f"{answer.get('message', '')}: {answer.get('reason', '')}"
                raise WsHandshakeError(f"user channel refused ({detail[:160]})")

    def ping_message(self) -> Any:
        return None


class UserOrders:
    """The account's orders as the ``user`` channel's full-channel messages move them
    (pure): ``received`` creates, ``open`` rests, ``match`` fills (our side, our fee
    rate), ``change`` resizes, ``done`` ends. Messages about an order this feed never saw
    received need its current state first (``needs_baseline``)."""

    def __init__(self, markets: Mapping[str, Market], client_id_of: Callable[[str], str]) -> None:
        self._markets = markets
        self._client_id_of = client_id_of
        self._orders: dict[str, Order] = {}

    def needs_baseline(self, frame: Mapping[str, Any]) -> str:
        """The order id to fetch before ``apply`` (empty when none is needed)."""
        kind = frame.get("type")
        if (
            kind not in ("open", "match", "change", "done")
            or frame.get("product_id") not in self._markets
        ):
            return ""
        order_id = self._own_order_id(frame)
        return "" if not order_id or order_id in self._orders else order_id

    def baseline(self, order: Order) -> None:
        self._orders[order.order_id] = order

    def _own_order_id(self, frame: Mapping[str, Any]) -> str:
        if frame.get("type") == "match":
            maker, taker = (
                str(frame.get("maker_order_id", "")),
                str(frame.get("taker_order_id", "")),
            )
            # user-channel matches carry the fee rate of our side only
            return taker if "taker_fee_rate" in frame else maker
        return str(frame.get("order_id", ""))

    def apply(self, frame: Mapping[str, Any]) -> OrderUpdate | None:
        kind = frame.get("type")
        market = self._markets.get(str(frame.get("product_id")))
        if market is None or kind not in ("received", "open", "match", "change", "done"):
            return None
        time = parse_time(frame.get("time")) or datetime.now(UTC)
        if kind == "received":
            price = frame.get("price")
            order = Order(
                exchange=VENUE,
                symbol=market.symbol,
                venue_symbol=market.venue_symbol,
                order_id=str(frame["order_id"]),
                client_order_id=self._client_id_of(str(frame.get("client_oid") or "")),
                side=Side.BUY if frame["side"] == "buy" else Side.SELL,
                type=OrderType.MARKET if frame.get("order_type") == "market" else OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                status=OrderStatus.NEW,
                price=decimal(price) if price else None,
                quantity=decimal(frame.get("size") or "0"),
                filled_quantity=ZERO,
                filled_quote_quantity=ZERO,
                fee=ZERO,
                fee_asset=market.symbol.quote,
                created_time=time,
                updated_time=time,
                simulated=False,
            )
            self._orders[order.order_id] = order
            return OrderUpdate(order, None, time)
        known = self._orders.get(self._own_order_id(frame))
        if known is None:
            return None
        fill = None
        if kind == "match":
            price, size = decimal(frame["price"]), decimal(frame["size"])
            taker = "taker_fee_rate" in frame
            rate = decimal(frame["taker_fee_rate" if taker else "maker_fee_rate"])
            fill = Fill(
                trade_id=str(frame["trade_id"]),
                order_id=known.order_id,
                client_order_id=known.client_order_id,
                symbol=market.symbol,
                side=known.side,
                price=price,
                quantity=size,
                fee=MONEY_CONTEXT.multiply(MONEY_CONTEXT.multiply(price, size), rate),
                fee_asset=market.symbol.quote,
                liquidity=Liquidity.TAKER if taker else Liquidity.MAKER,
                time=time,
            )
            filled = min(known.filled_quantity + size, known.quantity or size)
            order = replace(
                known,
                filled_quantity=filled,
                filled_quote_quantity=known.filled_quote_quantity + price * size,
                fee=(known.fee or ZERO) + fill.fee,
                status=OrderStatus.FILLED
                if known.quantity and filled >= known.quantity
                else OrderStatus.PARTIALLY_FILLED,
                updated_time=time,
            )
        elif kind == "change":
            order = replace(
                known, quantity=decimal(frame.get("new_size") or known.quantity), updated_time=time
            )
        elif kind == "done":
            completed = frame.get("reason") == "filled"
            order = replace(
                known,
                status=OrderStatus.FILLED if completed else OrderStatus.CANCELED,
                status_reason=str(frame.get("reason", "")),
                updated_time=time,
            )
            self._orders.pop(known.order_id, None)
            return OrderUpdate(order, None, time)
        else:  # open: resting on the book
            order = replace(known, updated_time=time)
        self._orders[order.order_id] = order
        return OrderUpdate(order, fill, time)


async def watch_account(
    ws_url: str,
    authenticate: Callable[[], dict[str, str]],
    markets: Callable[[], Awaitable[Mapping[str, Market]]],
    client_id_of: Callable[[str], str],
    fetch_order: Callable[[str], Awaitable[Order]],
    fetch_balances: Callable[[], Awaitable[BalanceUpdate]],
    stats: FrameStats,
    idle_timeout: float = HEARTBEAT_SILENCE_SECONDS,
) -> AsyncIterator[AccountEvent | AccountFeedConnected | FeedInterrupted]:
    """The account's private feed. The user channel says nothing of balances: they are
    read (REST) after each fill or finished order."""
    by_product = await markets()

    async def products() -> list[str]:
        return sorted(by_product)

    client = WebSocketClient(
        VENUE, UserChannelSubscription(ws_url, products, authenticate, idle_timeout)
    )
    orders = UserOrders(by_product, client_id_of)
    async for event in client.events():
        if isinstance(event, WsGap):
            yield FeedInterrupted(event.reason)
            continue
        if isinstance(event, WsConnected):
            orders = UserOrders(by_product, client_id_of)  # the catch-up restates them
            yield AccountFeedConnected()
            continue
        if isinstance(event, WsUnreadable):
            await client.reconnect("unreadable frame on the user channel")
            continue
        try:
            frame = event.data
            wanted = orders.needs_baseline(frame)
            if wanted:
                orders.baseline(await fetch_order(wanted))
            update = orders.apply(frame)
        except FRAME_ERRORS as error:
            stats.skip(VENUE, "user", error)
            await client.reconnect("malformed user channel message")
            continue
        if update is None:
            continue
        yield update
        if update.fill is not None or not update.order.status.is_open:
            yield await fetch_balances()
