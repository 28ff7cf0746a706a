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

The account's private feed takes a ``bullet-private`` token (signed) and subscribes
``/spotMarket/tradeOrdersV2`` (orderChange: received/open/match/filled/canceled/update
with the cumulative ``filledSize``) and ``/account/balance`` with ``privateChannel``.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from titan_grpc.domain import (
    MONEY_CONTEXT,
    ZERO,
    AccountEvent,
    AccountFeedConnected,
    Balance,
    BalanceUpdate,
    BookDiff,
    FeedInterrupted,
    Fill,
    Liquidity,
    Market,
    Order,
    OrderBook,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PriceLevel,
    Quote,
    Side,
    Ticker,
    TimeInForce,
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
    WsConnected,
    WsConnection,
    WsEndpoint,
    WsGap,
    WsHandshakeError,
    WsUnreadable,
)

VENUE = "kucoin"
SNAPSHOT_DEPTH = 100  # level2_100: the deepest public snapshot (the full book needs keys)


class BulletProtocol:
    """The WsProtocol of KuCoin topics on one bullet connection (public, or private with
    a bullet-private token and ``privateChannel``)."""

    def __init__(
        self,
        topic: str | Sequence[str],
        fetch_bullet: Callable[[], Awaitable[Any]],
        private: bool = False,
    ) -> None:
        self._topics = [topic] if isinstance(topic, str) else list(topic)
        self._fetch_bullet = fetch_bullet
        self._private = private
        self._ids = itertools.count(1)

    async def endpoint(self) -> WsEndpoint:
        bullet = await self._fetch_bullet()
        try:
            server = bullet["instanceServers"][0]
            url = f"{server['endpoint']}?token={bullet['token']}&connectId={uuid.uuid4().hex}"
            interval = int(server["pingInterval"]) / 1000
            timeout = int(server["pingTimeout"]) / 1000
        except FRAME_ERRORS as error:
            reason = f"unusable bullet answer ({type(error).__name__})"
            raise WsHandshakeError(reason) from None
        return WsEndpoint(
            url, app_ping_interval_seconds=interval, idle_timeout_seconds=interval + timeout
        )

    async def open(self, connection: WsConnection) -> None:
        welcome = await connection.receive_json()
        if not isinstance(welcome, dict) or welcome.get("type") != "welcome":
            raise WsHandshakeError(f"expected welcome, got {str(welcome)[:80]}")
        for topic in self._topics:
            request_id = str(next(self._ids))
            await connection.send_json(
                {
                    "id": request_id,
                    "type": "subscribe",
                    "topic": topic,
                    "privateChannel": self._private,
                    "response": True,
                }
            )
            while True:
                answer = await connection.receive_json()
                if not isinstance(answer, dict) or answer.get("id") != request_id:
                    continue  # data for other topics, pongs
                if answer.get("type") == "ack":
                    break
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


ORDER_TOPIC = "/spotMarket/tradeOrdersV2"
BALANCE_TOPIC = "/account/balance"
_ORDER_EVENTS = {"received", "open", "match", "filled", "canceled", "update"}


class PrivateOrders:
    """The account's orders as ``orderChange`` messages move them (pure). The messages
    carry the cumulative filled size but neither the filled funds nor the fee: those are
    summed here from the matches (the fee at the account's rate for the liquidity side),
    from the order's REST state when the feed meets an order it has not seen received."""

    def __init__(self, markets: Mapping[str, Market]) -> None:
        self._markets = markets
        self._orders: dict[str, Order] = {}

    def needs_baseline(self, frame: Any) -> tuple[Market, str] | None:
        data = _data(frame, ORDER_TOPIC)
        if data is None or data.get("type") == "received":
            return None
        market = self._markets.get(str(data.get("symbol")))
        order_id = str(data.get("orderId", ""))
        if market is None or not order_id or order_id in self._orders:
            return None
        return market, order_id

    def baseline(self, order: Order) -> None:
        self._orders[order.order_id] = order

    def apply(self, frame: Any) -> AccountEvent | None:
        balance = _data(frame, BALANCE_TOPIC)
        if balance is not None:
            row = Balance(
                str(balance["currency"]), decimal(balance["available"]), decimal(balance["hold"])
            )
            return BalanceUpdate(VENUE, (row,), from_ms(balance.get("time")) or datetime.now(UTC))
        data = _data(frame, ORDER_TOPIC)
        if data is None or data.get("type") not in _ORDER_EVENTS:
            return None
        market = self._markets.get(str(data.get("symbol")))
        if market is None:
            return None
        kind = data["type"]
        time = _ns(data.get("ts")) or datetime.now(UTC)
        order_id = str(data["orderId"])
        known = self._orders.get(order_id)
        if known is None:
            price = decimal(data.get("price") or "0")
            known = Order(
                exchange=VENUE,
                symbol=market.symbol,
                venue_symbol=market.venue_symbol,
                order_id=order_id,
                client_order_id=str(data.get("clientOid") or ""),
                side=Side.BUY if data["side"] == "buy" else Side.SELL,
                type=OrderType.MARKET if data.get("orderType") == "market" else OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                status=OrderStatus.NEW,
                price=price if price > 0 else None,
                quantity=decimal(data.get("originSize") or data.get("size") or "0"),
                filled_quantity=ZERO,
                filled_quote_quantity=ZERO,
                fee=ZERO,
                fee_asset=market.symbol.quote,
                created_time=_ns(data.get("orderTime")) or time,
                updated_time=time,
                simulated=False,
            )
        filled = decimal(data.get("filledSize") or "0")
        fill = None
        quote, fee = known.filled_quote_quantity, known.fee or ZERO
        if kind == "match":
            price, size = decimal(data["matchPrice"]), decimal(data["matchSize"])
            maker = data.get("liquidity") == "maker"
            rate = market.maker_fee_rate if maker else market.taker_fee_rate
            fill = Fill(
                trade_id=str(data["tradeId"]),
                order_id=order_id,
                client_order_id=known.client_order_id,
                symbol=market.symbol,
                side=known.side,
                price=price,
                quantity=size,
                fee=MONEY_CONTEXT.multiply(MONEY_CONTEXT.multiply(price, size), rate),
                fee_asset=market.symbol.quote,
                liquidity=Liquidity.MAKER if maker else Liquidity.TAKER,
                time=time,
            )
            quote, fee = quote + price * size, fee + fill.fee
        if kind == "canceled":
            status = OrderStatus.CANCELED
        elif kind == "filled" or (known.quantity and filled >= known.quantity):
            status = OrderStatus.FILLED
        else:
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
        order = replace(
            known,
            status=status,
            filled_quantity=max(filled, known.filled_quantity),
            filled_quote_quantity=quote,
            fee=fee,
            updated_time=time,
        )
        if status.is_open:
            self._orders[order_id] = order
        else:
            self._orders.pop(order_id, None)
        return OrderUpdate(order, fill, time)


def _ns(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1e9, tz=UTC) if value else None


async def watch_account(
    fetch_bullet: Callable[[], Awaitable[Any]],
    markets: Callable[[], Awaitable[Mapping[str, Market]]],
    fetch_order: Callable[[Market, str], Awaitable[Order]],
    stats: FrameStats,
) -> AsyncIterator[AccountEvent | AccountFeedConnected | FeedInterrupted]:
    by_symbol = await markets()
    protocol = BulletProtocol([ORDER_TOPIC, BALANCE_TOPIC], fetch_bullet, private=True)
    client = WebSocketClient(VENUE, protocol, heartbeat_seconds=None)
    orders = PrivateOrders(by_symbol)
    async for event in client.events():
        if isinstance(event, WsGap):
            yield FeedInterrupted(event.reason)
            continue
        if isinstance(event, WsConnected):
            orders = PrivateOrders(by_symbol)  # the catch-up restates them
            yield AccountFeedConnected()
            continue
        if isinstance(event, WsUnreadable):
            await client.reconnect("unreadable private frame")
            continue
        try:
            wanted = orders.needs_baseline(event.data)
            if wanted is not None:
                orders.baseline(await fetch_order(*wanted))
            item = orders.apply(event.data)
        except FRAME_ERRORS as error:
            stats.skip(VENUE, "private", error)
            await client.reconnect("malformed private message")
            continue
        if item is not None:
            yield item
