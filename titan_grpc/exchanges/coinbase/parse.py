"""Pure functions from Coinbase Exchange JSON to domain objects. Venue names stop here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from titan_grpc.domain import (
    ZERO,
    Balance,
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
    Side,
    Symbol,
    TimeInForce,
)
from titan_grpc.errors import (
    AuthenticationError,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    MalformedResponse,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
    PermissionDenied,
    RateLimited,
    TitanError,
    UnknownSymbol,
)
from titan_grpc.net.rest import RestResponse

VENUE = "coinbase"

_TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
TIME_IN_FORCE_NAMES = {tif: name for name, tif in _TIME_IN_FORCE.items()}
_LEDGER_TYPES = {
    "match": LedgerEntryType.TRADE,
    "fee": LedgerEntryType.FEE,
    "transfer": LedgerEntryType.TRANSFER,
    "deposit": LedgerEntryType.DEPOSIT,
    "withdrawal": LedgerEntryType.WITHDRAWAL,
}

# 400 messages (matched as substrings, lower case) -> taxonomy; EXCHANGES-REFERENCE 2.5.
_MESSAGE_KINDS: tuple[tuple[str, type[ExchangeError], str], ...] = (
    ("insufficient funds", InsufficientFunds, ""),
    ("order already done", OrderNotCancelable, ""),
    ("trading pair not available", UnknownSymbol, "symbol"),
    ("product not found", UnknownSymbol, "symbol"),
    ("price too", InvalidOrder, "price"),
    ("size is too", InvalidOrder, "quantity"),
    ("size too", InvalidOrder, "quantity"),
    ("funds is too", InvalidOrder, "quantity"),
    ("post only", OrderRejected, ""),
    ("invalid", InvalidOrder, ""),
)


def decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise MalformedResponse(
            f"coinbase sent a malformed number {str(value)[:40]!r}", exchange=VENUE
        ) from None


def optional(data: Mapping[str, Any], key: str) -> Decimal | None:
    value = data.get(key)
    return None if value in (None, "") else decimal(value)


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_error(response: RestResponse) -> TitanError | None:
    """Map a non-2xx answer, keeping Coinbase's ``message``."""
    if response.status < 400:
        return None
    try:
        message = str(response.json()["message"])
    except (TitanError, KeyError, TypeError):
        message = f"HTTP {response.status}"
    details = {"exchange": VENUE, "venue_code": str(response.status), "venue_message": message}
    text = f"coinbase {response.status}: {message}"
    if response.status == 401:
        return AuthenticationError(text, **details)
    if response.status == 403:
        return PermissionDenied(text, **details)
    if response.status == 404:
        return OrderNotFound(text, **details)
    if response.status == 429:
        return RateLimited(
            text, exchange=VENUE, venue_code=str(response.status), venue_message=message
        )
    lowered = message.lower()
    for fragment, kind, field in _MESSAGE_KINDS:
        if fragment in lowered:
            if kind is InvalidOrder:
                return InvalidOrder(text, field=field, **details)
            return kind(text, **details)
    return ExchangeError(text, **details)


def parse_products(
    rows: list[Mapping[str, Any]], maker_fee: Decimal, taker_fee: Decimal
) -> dict[Symbol, Market]:
    markets: dict[Symbol, Market] = {}
    for row in rows:
        symbol = Symbol(str(row["base_currency"]).upper(), str(row["quote_currency"]).upper())
        step = decimal(row.get("base_increment", "0"))
        min_size = optional(row, "base_min_size") or step
        max_size = optional(row, "base_max_size")
        markets[symbol] = Market(
            exchange=VENUE,
            symbol=symbol,
            venue_symbol=str(row["id"]),
            tick_size=decimal(row.get("quote_increment", "0")),
            step_size=step,
            min_quantity=min_size,
            max_quantity=max_size,
            min_notional=optional(row, "min_market_funds") or ZERO,
            maker_fee_rate=maker_fee,
            taker_fee_rate=taker_fee,
            trading_enabled=not row.get("trading_disabled", False)
            and row.get("status", "online") == "online"
            and not row.get("cancel_only", False),
        )
    return markets


def parse_fees(row: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    """GET /fees: ``{maker_fee_rate, taker_fee_rate, usd_volume}`` as (maker, taker)."""
    return decimal(row["maker_fee_rate"]), decimal(row["taker_fee_rate"])


def levels(rows: Any, depth: int | None = None) -> tuple[PriceLevel, ...]:
    """[price, size, ...] rows as price levels (the first ``depth`` of them)."""
    return tuple(PriceLevel(decimal(row[0]), decimal(row[1])) for row in rows[:depth])


def parse_book(
    data: Mapping[str, Any], market: Market, depth: int, received: datetime
) -> OrderBook:
    return OrderBook(
        exchange=VENUE,
        symbol=market.symbol,
        venue_symbol=market.venue_symbol,
        bids=levels(data.get("bids", []), depth),
        asks=levels(data.get("asks", []), depth),
        sequence=int(data.get("sequence", 0)),
        simulated=False,
        venue_time=parse_time(data.get("time")),
        received_time=received,
    )


def parse_trades(rows: list[Mapping[str, Any]]) -> list[PublicTrade]:
    """Coinbase lists newest first; ``side`` is the maker's, so the taker is the other."""
    return [
        PublicTrade(
            trade_id=str(row["trade_id"]),
            price=decimal(row["price"]),
            quantity=decimal(row["size"]),
            taker_side=Side.SELL if row.get("side") == "buy" else Side.BUY,
            time=parse_time(row.get("time")) or datetime.now(UTC),
        )
        for row in rows
    ]


def parse_accounts(rows: list[Mapping[str, Any]]) -> list[Balance]:
    balances = [
        Balance(str(row["currency"]), decimal(row["available"]), decimal(row["hold"]))
        for row in rows
    ]
    return sorted((b for b in balances if b.total > 0), key=lambda b: b.asset)


def _status(row: Mapping[str, Any], filled: Decimal) -> OrderStatus:
    status = row.get("status")
    if status == "done":
        if row.get("done_reason") == "filled":
            return OrderStatus.FILLED
        return OrderStatus.CANCELED
    if status == "rejected":
        return OrderStatus.REJECTED
    if status in ("open", "active", "pending", "received"):
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    return OrderStatus.PENDING


def parse_order(
    row: Mapping[str, Any], market: Market, client_order_id: str, received: datetime
) -> Order:
    filled = decimal(row.get("filled_size", "0"))
    created = parse_time(row.get("created_at")) or received
    fee = optional(row, "fill_fees")
    return Order(
        exchange=VENUE,
        symbol=market.symbol,
        venue_symbol=market.venue_symbol,
        order_id=str(row["id"]),
        client_order_id=client_order_id,
        side=Side.BUY if row.get("side") == "buy" else Side.SELL,
        type=_order_type(row),
        time_in_force=_TIME_IN_FORCE.get(str(row.get("time_in_force")), TimeInForce.GTC),
        status=_status(row, filled),
        price=optional(row, "price"),
        quantity=decimal(row.get("size") or row.get("filled_size") or "0"),
        filled_quantity=filled,
        filled_quote_quantity=decimal(row.get("executed_value", "0")),
        fee=fee,
        fee_asset=market.symbol.quote if fee is not None else "",
        created_time=created,
        updated_time=parse_time(row.get("done_at")) or created,
        simulated=False,
        status_reason=str(row.get("done_reason") or row.get("reject_reason") or ""),
        stop_price=optional(row, "stop_price"),
        quote_quantity=optional(row, "specified_funds") if not row.get("size") else None,
    )


def _order_type(row: Mapping[str, Any]) -> OrderType:
    # A stop order is a limit (or, formerly, market) order with "stop" and "stop_price".
    market = row.get("type") == "market"
    if row.get("stop"):
        return OrderType.STOP_MARKET if market else OrderType.STOP_LIMIT
    return OrderType.MARKET if market else OrderType.LIMIT


def parse_fill(row: Mapping[str, Any], market: Market, client_order_id: str) -> Fill:
    return Fill(
        trade_id=str(row["trade_id"]),
        order_id=str(row["order_id"]),
        client_order_id=client_order_id,
        symbol=market.symbol,
        side=Side.BUY if row.get("side") == "buy" else Side.SELL,
        price=decimal(row["price"]),
        quantity=decimal(row["size"]),
        fee=decimal(row.get("fee", "0")),
        fee_asset=market.symbol.quote,
        liquidity=Liquidity.MAKER if row.get("liquidity") == "M" else Liquidity.TAKER,
        time=parse_time(row.get("created_at")) or datetime.now(UTC),
    )


def parse_ledger_entry(row: Mapping[str, Any], asset: str) -> LedgerEntry:
    details = row.get("details") or {}
    return LedgerEntry(
        entry_id=str(row["id"]),
        asset=asset,
        amount=decimal(row["amount"]),
        balance_after=decimal(row["balance"]),
        type=_LEDGER_TYPES.get(str(row.get("type")), LedgerEntryType.OTHER),
        reference_id=str(details.get("order_id") or details.get("trade_id") or ""),
        time=parse_time(row.get("created_at")) or datetime.now(UTC),
    )
