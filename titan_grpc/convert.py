"""Protobuf <-> domain conversion and request-field validation.

Validation raises InvalidArgument naming the proto field; the service layer turns that
into INVALID_ARGUMENT with a google.rpc.BadRequest detail.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from titan_grpc.domain import (
    Balance,
    FeeSource,
    Fill,
    LedgerEntry,
    LedgerEntryType,
    Liquidity,
    Market,
    Order,
    OrderBook,
    OrderStatus,
    OrderType,
    PriceLevel,
    PublicTrade,
    Quote,
    RecentTrades,
    Side,
    Symbol,
    Ticker,
    TimeInForce,
    format_decimal,
    parse_asset,
    parse_symbol,
)
from titan_grpc.errors import InvalidArgument
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.trading.journal import JournalEntry, JournalState

_SIDES = {pb.SIDE_BUY: Side.BUY, pb.SIDE_SELL: Side.SELL}
_SIDES_PB = {side: value for value, side in _SIDES.items()}
_ORDER_TYPES = {pb.ORDER_TYPE_LIMIT: OrderType.LIMIT, pb.ORDER_TYPE_MARKET: OrderType.MARKET}
_STOP_ORDER_TYPES = {
    pb.ORDER_TYPE_STOP_LIMIT: OrderType.STOP_LIMIT,
    pb.ORDER_TYPE_STOP_MARKET: OrderType.STOP_MARKET,
}
_ORDER_TYPES_PB = {kind: value for value, kind in (_ORDER_TYPES | _STOP_ORDER_TYPES).items()}
_FEE_SOURCES_PB = {
    FeeSource.DEFAULT: pb.FEE_SOURCE_DEFAULT,
    FeeSource.ACCOUNT: pb.FEE_SOURCE_ACCOUNT,
}
_TIFS = {
    pb.TIME_IN_FORCE_GTC: TimeInForce.GTC,
    pb.TIME_IN_FORCE_IOC: TimeInForce.IOC,
    pb.TIME_IN_FORCE_FOK: TimeInForce.FOK,
}
_TIFS_PB = {tif: value for value, tif in _TIFS.items()}
_STATUSES_PB = {
    OrderStatus.NEW: pb.ORDER_STATUS_NEW,
    OrderStatus.PARTIALLY_FILLED: pb.ORDER_STATUS_PARTIALLY_FILLED,
    OrderStatus.FILLED: pb.ORDER_STATUS_FILLED,
    OrderStatus.CANCELED: pb.ORDER_STATUS_CANCELED,
    OrderStatus.REJECTED: pb.ORDER_STATUS_REJECTED,
    OrderStatus.EXPIRED: pb.ORDER_STATUS_EXPIRED,
    OrderStatus.PENDING: pb.ORDER_STATUS_PENDING,
}
_LIQUIDITY_PB = {Liquidity.MAKER: pb.LIQUIDITY_MAKER, Liquidity.TAKER: pb.LIQUIDITY_TAKER}
_LEDGER_TYPES_PB = {
    LedgerEntryType.TRADE: pb.LEDGER_ENTRY_TYPE_TRADE,
    LedgerEntryType.FEE: pb.LEDGER_ENTRY_TYPE_FEE,
    LedgerEntryType.DEPOSIT: pb.LEDGER_ENTRY_TYPE_DEPOSIT,
    LedgerEntryType.WITHDRAWAL: pb.LEDGER_ENTRY_TYPE_WITHDRAWAL,
    LedgerEntryType.TRANSFER: pb.LEDGER_ENTRY_TYPE_TRANSFER,
    LedgerEntryType.OTHER: pb.LEDGER_ENTRY_TYPE_OTHER,
}

CLIENT_ORDER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,36}")  # used with fullmatch
MAX_SYMBOLS_PER_STREAM = 50
MAX_ORDER_ID_CHARS = 128
# Edge bounds for any request, checked before any work: no field of any RPC needs more.
# Tighter per-field limits (symbols, order ids, decimals) follow in the helpers below.
MAX_STRING_CHARS = 1024
MAX_REPEATED_VALUES = 64
WITHIN_BOUNDS_BYTES = min(MAX_STRING_CHARS, MAX_REPEATED_VALUES)


# ---- requests -> domain ------------------------------------------------------------


def check_request_bounds(message: Message, prefix: str = "") -> None:
    """Refuse a request with an over-long string or over-long repeated field, naming it.

    Walks only the fields that are set, nested messages included, so it costs little for
    a sane request and stops at the first excess for a hostile one. A message of at most
    ``WITHIN_BOUNDS_BYTES`` encoded bytes is not walked at all: every string character
    and every repeated value takes at least one byte, so none can exceed a bound.
    """
    if not prefix and message.ByteSize() <= WITHIN_BOUNDS_BYTES:
        return
    for field, value in message.ListFields():
        name = prefix + field.name
        if field.is_repeated:
            if len(value) > MAX_REPEATED_VALUES:
                raise InvalidArgument(
                    name, f"at most {MAX_REPEATED_VALUES} values, got {len(value)}"
                )
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                continue  # no request has a map today; its size is bounded above
            for index, item in enumerate(value):
                _check_value(field, item, f"{name}[{index}]")
        else:
            _check_value(field, value, name)


def _check_value(field: FieldDescriptor, value: object, name: str) -> None:
    if isinstance(value, str | bytes) and len(value) > MAX_STRING_CHARS:
        raise InvalidArgument(name, f"is longer than {MAX_STRING_CHARS} characters")
    if isinstance(value, Message):
        check_request_bounds(value, name + ".")


def side_from_proto(value: int, field: str = "side") -> Side:
    try:
        return _SIDES[value]  # type: ignore[index]
    except KeyError:
        raise InvalidArgument(field, _enum_reason(value, "SIDE_BUY or SIDE_SELL")) from None


def order_type_from_proto(
    value: int, field: str = "type", *, allow_stops: bool = False
) -> OrderType:
    types = _ORDER_TYPES | _STOP_ORDER_TYPES if allow_stops else _ORDER_TYPES
    try:
        return types[value]  # type: ignore[index]
    except KeyError:
        allowed = (
            "ORDER_TYPE_LIMIT, _MARKET, _STOP_LIMIT or _STOP_MARKET"
            if allow_stops
            else "ORDER_TYPE_LIMIT or ORDER_TYPE_MARKET"
        )
        raise InvalidArgument(field, _enum_reason(value, allowed)) from None


def time_in_force_from_proto(
    value: int, order_type: OrderType, field: str = "time_in_force"
) -> TimeInForce:
    if value == pb.TIME_IN_FORCE_UNSPECIFIED:
        return TimeInForce.GTC if order_type.has_limit_price else TimeInForce.IOC
    try:
        return _TIFS[value]  # type: ignore[index]
    except KeyError:
        raise InvalidArgument(
            field, _enum_reason(value, "TIME_IN_FORCE_GTC, _IOC or _FOK")
        ) from None


def _enum_reason(value: int, allowed: str) -> str:
    if value == 0:
        return f"is required ({allowed})"
    return f"unknown value {value} (expected {allowed})"


def symbol_from_proto(text: str, field: str = "symbol") -> Symbol:
    return parse_symbol(text, field)


def optional_symbol_from_proto(text: str, field: str = "symbol") -> Symbol | None:
    return parse_symbol(text, field) if text.strip() else None


def symbols_from_proto(values: Sequence[str], field: str = "symbols") -> list[Symbol]:
    if not values:
        raise InvalidArgument(field, "at least one symbol is required")
    if len(values) > MAX_SYMBOLS_PER_STREAM:
        raise InvalidArgument(field, f"at most {MAX_SYMBOLS_PER_STREAM} symbols per request")
    symbols: list[Symbol] = []
    for index, text in enumerate(values):
        symbol = parse_symbol(text, f"{field}[{index}]")
        if symbol not in symbols:
            symbols.append(symbol)
    return symbols


def optional_asset_from_proto(text: str, field: str) -> str | None:
    return parse_asset(text, field) if text.strip() else None


def bounded(value: int, *, default: int, maximum: int, field: str) -> int:
    if value == 0:
        return default
    if value > maximum:
        raise InvalidArgument(field, f"must be at most {maximum}, got {value}")
    return value


MAX_AGE_LIMIT_SECONDS = 86_400


def max_age_from_proto(request: Any, field: str = "max_age") -> float | None:
    """The caller's ``max_age`` in seconds, or None when the field is unset."""
    if not request.HasField(field):
        return None
    value: Duration = getattr(request, field)
    if value.seconds < 0 or value.nanos < 0:
        raise InvalidArgument(field, "must not be negative")
    if not 0 <= value.nanos < 1_000_000_000:
        raise InvalidArgument(field, "nanos must be below one second")
    if value.seconds > MAX_AGE_LIMIT_SECONDS:
        raise InvalidArgument(field, f"must be at most {MAX_AGE_LIMIT_SECONDS} seconds")
    return value.seconds + value.nanos / 1e9


def client_order_id_from_proto(text: str, field: str = "client_order_id") -> str:
    """The caller's id, validated; a fresh UUID (valid on every venue) when empty."""
    if not text:
        return str(uuid.uuid4())
    if not CLIENT_ORDER_ID_RE.fullmatch(text):
        raise InvalidArgument(field, "must be 1-36 characters of letters, digits, '-' or '_'")
    return text


def optional_order_id_from_proto(text: str, field: str = "order_id") -> str:
    """A venue order id: printable ASCII (every venue's ids are), at most 128 characters."""
    order_id = text.strip()
    if len(order_id) > MAX_ORDER_ID_CHARS:
        raise InvalidArgument(field, f"is longer than {MAX_ORDER_ID_CHARS} characters")
    if not (order_id.isascii() and order_id.isprintable()):
        raise InvalidArgument(field, "must be printable ASCII (a venue order id)")
    return order_id


def order_reference_from_proto(order_id: str, client_order_id: str) -> tuple[str, str]:
    if not order_id.strip() and not client_order_id:
        raise InvalidArgument("order_id", "give order_id or client_order_id")
    if client_order_id and not CLIENT_ORDER_ID_RE.fullmatch(client_order_id):
        raise InvalidArgument(
            "client_order_id", "must be 1-36 characters of letters, digits, '-' or '_'"
        )
    return optional_order_id_from_proto(order_id), client_order_id


# ---- domain -> responses -----------------------------------------------------------


def dec(value: Decimal | None) -> str:
    return format_decimal(value)


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


def source(
    exchange: str,
    simulated: bool,
    venue_time: datetime | None,
    received_time: datetime | None,
    *,
    fallback: bool = False,
    note: str = "",
) -> pb.Source:
    return pb.Source(
        exchange=exchange,
        simulated=simulated,
        fallback=fallback,
        venue_time=timestamp(venue_time),
        received_time=timestamp(received_time),
        note=note,
    )


def side_to_proto(side: Side) -> pb.Side.ValueType:
    return _SIDES_PB[side]


def ticker_to_proto(ticker: Ticker) -> pb.Ticker:
    return pb.Ticker(
        symbol=ticker.symbol.canonical,
        venue_symbol=ticker.venue_symbol,
        bid=dec(ticker.bid),
        bid_size=dec(ticker.bid_size),
        ask=dec(ticker.ask),
        ask_size=dec(ticker.ask_size),
        last=dec(ticker.last),
        open_24h=dec(ticker.open_24h),
        high_24h=dec(ticker.high_24h),
        low_24h=dec(ticker.low_24h),
        volume_24h=dec(ticker.volume_24h),
        quote_volume_24h=dec(ticker.quote_volume_24h),
        change_percent_24h=dec(ticker.change_percent_24h),
        source=source(
            ticker.exchange,
            ticker.simulated,
            ticker.venue_time,
            ticker.received_time,
            note=ticker.note,
            fallback=ticker.fallback,
        ),
    )


def levels_to_proto(levels: Iterable[PriceLevel]) -> list[pb.PriceLevel]:
    return [pb.PriceLevel(price=dec(level.price), quantity=dec(level.quantity)) for level in levels]


def book_to_proto(book: OrderBook) -> pb.OrderBook:
    return pb.OrderBook(
        symbol=book.symbol.canonical,
        venue_symbol=book.venue_symbol,
        bids=levels_to_proto(book.bids),
        asks=levels_to_proto(book.asks),
        sequence=book.sequence,
        source=source(
            book.exchange,
            book.simulated,
            book.venue_time,
            book.received_time,
            note=book.note,
            fallback=book.fallback,
        ),
    )


def public_trade_to_proto(trade: PublicTrade) -> pb.PublicTrade:
    return pb.PublicTrade(
        trade_id=trade.trade_id,
        price=dec(trade.price),
        quantity=dec(trade.quantity),
        side=side_to_proto(trade.taker_side),
        time=timestamp(trade.time),
    )


def recent_trades_to_proto(trades: RecentTrades) -> pb.GetRecentTradesResponse:
    return pb.GetRecentTradesResponse(
        symbol=trades.symbol.canonical,
        venue_symbol=trades.venue_symbol,
        trades=[public_trade_to_proto(trade) for trade in trades.trades],
        source=source(
            trades.exchange,
            trades.simulated,
            None,
            trades.received_time,
            note=trades.note,
            fallback=trades.fallback,
        ),
    )


def balance_to_proto(balance: Balance) -> pb.Balance:
    return pb.Balance(
        asset=balance.asset,
        free=dec(balance.free),
        locked=dec(balance.locked),
        total=dec(balance.total),
    )


def fill_to_proto(fill: Fill) -> pb.Fill:
    return pb.Fill(
        trade_id=fill.trade_id,
        order_id=fill.order_id,
        client_order_id=fill.client_order_id,
        symbol=fill.symbol.canonical,
        side=side_to_proto(fill.side),
        price=dec(fill.price),
        quantity=dec(fill.quantity),
        quote_quantity=dec(fill.quote_quantity),
        fee=dec(fill.fee),
        fee_asset=fill.fee_asset,
        liquidity=_LIQUIDITY_PB[fill.liquidity],
        time=timestamp(fill.time),
    )


def order_to_proto(order: Order) -> pb.Order:
    return pb.Order(
        exchange=order.exchange,
        symbol=order.symbol.canonical,
        venue_symbol=order.venue_symbol,
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        side=side_to_proto(order.side),
        type=_ORDER_TYPES_PB[order.type],
        time_in_force=_TIFS_PB[order.time_in_force],
        status=_STATUSES_PB[order.status],
        price=dec(order.price),
        quantity=dec(order.quantity),
        filled_quantity=dec(order.filled_quantity),
        average_fill_price=dec(order.average_fill_price),
        filled_quote_quantity=dec(order.filled_quote_quantity),
        fee=dec(order.fee),
        fee_asset=order.fee_asset,
        created_time=timestamp(order.created_time),
        updated_time=timestamp(order.updated_time),
        simulated=order.simulated,
        fills=[fill_to_proto(fill) for fill in order.fills],
        status_reason=order.status_reason,
        placed_by_gateway=order.placed_by_gateway,
        stop_price=dec(order.stop_price),
        quote_quantity=dec(order.quote_quantity),
    )


def market_to_proto(market: Market, simulated: bool) -> pb.Market:
    return pb.Market(
        exchange=market.exchange,
        symbol=market.symbol.canonical,
        venue_symbol=market.venue_symbol,
        status=pb.MARKET_STATUS_TRADING if market.trading_enabled else pb.MARKET_STATUS_HALTED,
        tick_size=dec(market.tick_size),
        step_size=dec(market.step_size),
        min_quantity=dec(market.min_quantity),
        max_quantity=dec(market.max_quantity),
        min_notional=dec(market.min_notional),
        maker_fee_rate=dec(market.maker_fee_rate),
        taker_fee_rate=dec(market.taker_fee_rate),
        fee_source=_FEE_SOURCES_PB[market.fee_source],
        simulated=simulated,
        base_asset=market.symbol.base,
        quote_asset=market.symbol.quote,
    )


def ledger_entry_to_proto(entry: LedgerEntry) -> pb.LedgerEntry:
    return pb.LedgerEntry(
        entry_id=entry.entry_id,
        asset=entry.asset,
        amount=dec(entry.amount),
        balance_after=dec(entry.balance_after),
        type=_LEDGER_TYPES_PB[entry.type],
        reference_id=entry.reference_id,
        time=timestamp(entry.time),
    )


def quote_to_proto(quote: Quote, sequence: int) -> pb.Quote:
    return pb.Quote(
        exchange=quote.exchange,
        symbol=quote.symbol.canonical,
        venue_symbol=quote.venue_symbol,
        bid=dec(quote.bid),
        bid_size=dec(quote.bid_size),
        ask=dec(quote.ask),
        ask_size=dec(quote.ask_size),
        last=dec(quote.last),
        source=source(
            quote.exchange,
            quote.simulated,
            quote.venue_time,
            quote.received_time,
            note=quote.note,
            fallback=quote.fallback,
        ),
        sequence=sequence,
    )


_JOURNAL_STATES_PB = {
    JournalState.INTENT: pb.JOURNAL_STATE_INTENT,
    JournalState.ACCEPTED: pb.JOURNAL_STATE_ACCEPTED,
    JournalState.REJECTED: pb.JOURNAL_STATE_REJECTED,
    JournalState.UNSENT: pb.JOURNAL_STATE_UNSENT,
    JournalState.AMBIGUOUS: pb.JOURNAL_STATE_AMBIGUOUS,
}
_JOURNAL_STATES = {value: state for state, value in _JOURNAL_STATES_PB.items()}


def journal_states_from_proto(
    values: Sequence[int], field: str = "states"
) -> tuple[JournalState, ...]:
    """The distinct states asked for, in request order (a repeated one counts once)."""
    if len(values) > MAX_REPEATED_VALUES:
        raise InvalidArgument(field, f"at most {MAX_REPEATED_VALUES} values, got {len(values)}")
    states: dict[JournalState, None] = {}
    for index, value in enumerate(values):
        state = _JOURNAL_STATES.get(value)  # type: ignore[call-overload]
        if state is None:
            raise InvalidArgument(
                f"{field}[{index}]", _enum_reason(value, "a JOURNAL_STATE_* value")
            )
        states.setdefault(state)
    return tuple(states)


def journaled_order_to_proto(entry: JournalEntry) -> pb.JournaledOrder:
    request = entry.request
    return pb.JournaledOrder(
        exchange=entry.exchange,
        client_order_id=entry.client_order_id,
        state=_JOURNAL_STATES_PB[entry.state],
        intent=pb.OrderIntent(
            symbol=request.symbol.canonical,
            side=side_to_proto(request.side),
            type=_ORDER_TYPES_PB[request.type],
            quantity=dec(request.quantity),
            price=dec(request.price),
            time_in_force=_TIFS_PB[request.time_in_force],
            post_only=request.post_only,
            quote_quantity=dec(request.quote_quantity),
            stop_price=dec(request.stop_price),
        ),
        order=order_to_proto(entry.order) if entry.order is not None else None,
        error=f"{entry.error_kind}: {entry.error_message}" if entry.error_kind else "",
        attempts=entry.attempts,
        created_time=timestamp(entry.created_at),
        updated_time=timestamp(entry.updated_at),
    )
