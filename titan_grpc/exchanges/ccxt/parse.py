"""ccxt's unified structures -> TITAN domain objects (pure functions, no ccxt import).

Money never passes through float here. The adapter runs ccxt with ``number = str`` and
JSON numbers parsed as strings (ccxt's own ``quoteJsonNumbers`` in JavaScript), so the
unified fields hold the venue's decimal text. Where ccxt itself still makes a float
(the fee rates of its static ``describe()`` tables, book levels read with ``safe_float``
(the adapter replaces that reader), or a venue answer ccxt computes on) ``decimal`` takes
the float's shortest repr, which is exact for every value of at most 15 significant
digits, and refuses anything longer as MalformedResponse instead of guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from titan_grpc.domain import (
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
    Ticker,
    TimeInForce,
)
from titan_grpc.errors import MalformedResponse

ZERO = Decimal(0)
FLOAT_SAFE_DIGITS = 15  # a double holds any decimal of up to 15 significant digits exactly

# ccxt precisionMode constants (ccxt.base.decimal_to_precision).
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4

_STATUSES = {
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
_TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
_LEDGER_TYPES = {
    "trade": LedgerEntryType.TRADE,
    "fee": LedgerEntryType.FEE,
    "transaction": LedgerEntryType.DEPOSIT,
    "deposit": LedgerEntryType.DEPOSIT,
    "withdrawal": LedgerEntryType.WITHDRAWAL,
    "transfer": LedgerEntryType.TRANSFER,
}


def decimal(value: Any, what: str = "number") -> Decimal:
    """A ccxt number (str in string mode, int, or a float ccxt made) as an exact Decimal."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        raise MalformedResponse(f"ccxt: expected a number for {what}, got {value!r}")
    if isinstance(value, float):
        text = repr(value)
        digits = len(Decimal(text).as_tuple().digits)
        if digits > FLOAT_SAFE_DIGITS or text in ("nan", "inf", "-inf"):
            raise MalformedResponse(
                f"ccxt: {what} came as the float {text}, which may not be the venue's "
                "exact value; refused"
            )
        return Decimal(text)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise MalformedResponse(f"ccxt: {what} is not a number: {value!r}") from None
    if not number.is_finite():
        raise MalformedResponse(f"ccxt: {what} is not a finite number: {value!r}")
    return number


def optional_decimal(value: Any, what: str = "number") -> Decimal | None:
    return None if value is None or value == "" else decimal(value, what)


def from_ms(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def tick_size(precision: Any, precision_mode: int) -> Decimal:
    """The price/amount increment from ccxt's market precision; 0 when it is unknown."""
    if precision is None:
        return ZERO
    if precision_mode == TICK_SIZE:
        return decimal(precision, "precision")
    if precision_mode == DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(decimal(precision, "precision")))
    return ZERO  # SIGNIFICANT_DIGITS: no fixed increment; the venue checks it


def parse_markets(
    venue: str, markets: Mapping[str, Mapping[str, Any]], precision_mode: int
) -> dict[Symbol, Market]:
    """Spot markets only: TITAN's order and data model is spot."""
    found: dict[Symbol, Market] = {}
    for data in markets.values():
        if not data.get("spot", True) or data.get("type", "spot") != "spot":
            continue
        base, quote = str(data.get("base") or ""), str(data.get("quote") or "")
        if not base or not quote:
            continue
        symbol = Symbol(base.upper(), quote.upper())
        precision = data.get("precision") or {}
        limits = data.get("limits") or {}
        amount = limits.get("amount") or {}
        cost = limits.get("cost") or {}
        max_quantity = optional_decimal(amount.get("max"), "limits.amount.max")
        found[symbol] = Market(
            exchange=venue,
            symbol=symbol,
            venue_symbol=str(data["id"]),
            tick_size=tick_size(precision.get("price"), precision_mode),
            step_size=tick_size(precision.get("amount"), precision_mode),
            min_quantity=optional_decimal(amount.get("min"), "limits.amount.min") or ZERO,
            max_quantity=max_quantity if max_quantity else None,
            min_notional=optional_decimal(cost.get("min"), "limits.cost.min") or ZERO,
            maker_fee_rate=optional_decimal(data.get("maker"), "maker") or ZERO,
            taker_fee_rate=optional_decimal(data.get("taker"), "taker") or ZERO,
            trading_enabled=data.get("active") is not False,
        )
    return found


def parse_ticker(data: Mapping[str, Any], market: Market, received: datetime) -> Ticker:
    return Ticker(
        exchange=market.exchange,
        symbol=market.symbol,
        venue_symbol=market.venue_symbol,
        bid=optional_decimal(data.get("bid"), "bid"),
        bid_size=optional_decimal(data.get("bidVolume"), "bidVolume"),
        ask=optional_decimal(data.get("ask"), "ask"),
        ask_size=optional_decimal(data.get("askVolume"), "askVolume"),
        last=optional_decimal(data.get("last"), "last"),
        open_24h=optional_decimal(data.get("open"), "open"),
        high_24h=optional_decimal(data.get("high"), "high"),
        low_24h=optional_decimal(data.get("low"), "low"),
        volume_24h=optional_decimal(data.get("baseVolume"), "baseVolume"),
        quote_volume_24h=optional_decimal(data.get("quoteVolume"), "quoteVolume"),
        change_percent_24h=optional_decimal(data.get("percentage"), "percentage"),
        simulated=False,
        venue_time=from_ms(data.get("timestamp")),
        received_time=received,
    )


def _levels(rows: Iterable[Any], descending: bool, depth: int) -> tuple[PriceLevel, ...]:
    levels = [
        PriceLevel(decimal(row[0], "book price"), decimal(row[1], "book size")) for row in rows
    ]
    levels.sort(key=lambda level: level.price, reverse=descending)
    return tuple(levels[:depth])


def parse_order_book(
    data: Mapping[str, Any], market: Market, depth: int, received: datetime
) -> OrderBook:
    nonce = data.get("nonce")
    return OrderBook(
        exchange=market.exchange,
        symbol=market.symbol,
        venue_symbol=market.venue_symbol,
        bids=_levels(data.get("bids") or [], True, depth),
        asks=_levels(data.get("asks") or [], False, depth),
        sequence=int(nonce) if isinstance(nonce, int | str) and str(nonce).isdigit() else 0,
        simulated=False,
        venue_time=from_ms(data.get("timestamp")),
        received_time=received,
    )


def parse_public_trades(rows: Iterable[Mapping[str, Any]]) -> tuple[PublicTrade, ...]:
    trades = [
        PublicTrade(
            trade_id=str(row.get("id") or ""),
            price=decimal(row["price"], "trade price"),
            quantity=decimal(row["amount"], "trade amount"),
            taker_side=Side.SELL if row.get("side") == "sell" else Side.BUY,
            time=from_ms(row.get("timestamp")) or datetime.fromtimestamp(0, tz=UTC),
        )
        for row in rows
    ]
    trades.sort(key=lambda trade: trade.time, reverse=True)  # newest first
    return tuple(trades)


def parse_balances(data: Mapping[str, Any]) -> list[Balance]:
    free = data.get("free") or {}
    used = data.get("used") or {}
    balances = []
    for asset in sorted(set(free) | set(used)):
        balance = Balance(
            str(asset).upper(),
            optional_decimal(free.get(asset), f"free {asset}") or ZERO,
            optional_decimal(used.get(asset), f"used {asset}") or ZERO,
        )
        if balance.total > 0:
            balances.append(balance)
    return balances


def _fee(data: Mapping[str, Any]) -> tuple[Decimal | None, str]:
    fee = data.get("fee")
    if isinstance(fee, Mapping) and fee.get("cost") is not None:
        return decimal(fee["cost"], "fee"), str(fee.get("currency") or "")
    return None, ""


def parse_fill(
    data: Mapping[str, Any], market: Market, order: Mapping[str, Any] | None = None
) -> Fill:
    fee, fee_asset = _fee(data)
    source = order or {}
    side = data.get("side") or source.get("side")
    return Fill(
        trade_id=str(data.get("id") or ""),
        order_id=str(data.get("order") or source.get("id") or ""),
        client_order_id=str(data.get("clientOrderId") or source.get("clientOrderId") or ""),
        symbol=market.symbol,
        side=Side.SELL if side == "sell" else Side.BUY,
        price=decimal(data["price"], "fill price"),
        quantity=decimal(data["amount"], "fill amount"),
        fee=fee if fee is not None else ZERO,
        fee_asset=fee_asset,
        liquidity=Liquidity.MAKER if data.get("takerOrMaker") == "maker" else Liquidity.TAKER,
        time=from_ms(data.get("timestamp") or source.get("lastTradeTimestamp"))
        or from_ms(source.get("timestamp"))
        or datetime.fromtimestamp(0, tz=UTC),
    )


def order_status(data: Mapping[str, Any], filled: Decimal) -> OrderStatus:
    status = str(data.get("status") or "")
    if status == "open":
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    return _STATUSES.get(status, OrderStatus.PENDING)


def parse_order(data: Mapping[str, Any], market: Market, received: datetime) -> Order:
    filled = optional_decimal(data.get("filled"), "filled") or ZERO
    price = optional_decimal(data.get("price"), "price")
    created = from_ms(data.get("timestamp")) or received
    fills = tuple(
        parse_fill(row, market, data)
        for row in data.get("trades") or []
        if row.get("price") is not None and row.get("amount") is not None
    )
    fee, fee_asset = _fee(data)
    return Order(
        exchange=market.exchange,
        symbol=market.symbol,
        venue_symbol=market.venue_symbol,
        order_id=str(data.get("id") or ""),
        client_order_id=str(data.get("clientOrderId") or ""),
        side=Side.SELL if data.get("side") == "sell" else Side.BUY,
        type=OrderType.MARKET if data.get("type") == "market" else OrderType.LIMIT,
        time_in_force=_TIME_IN_FORCE.get(str(data.get("timeInForce")), TimeInForce.GTC),
        status=order_status(data, filled),
        price=price if price else None,
        quantity=optional_decimal(data.get("amount"), "amount") or ZERO,
        filled_quantity=filled,
        filled_quote_quantity=max(optional_decimal(data.get("cost"), "cost") or ZERO, ZERO),
        fee=fee,
        fee_asset=fee_asset,
        created_time=created,
        updated_time=from_ms(data.get("lastUpdateTimestamp") or data.get("lastTradeTimestamp"))
        or created,
        simulated=False,
        fills=fills,
    )


def parse_ledger(rows: Iterable[Mapping[str, Any]]) -> list[LedgerEntry]:
    entries = []
    for row in rows:
        amount = decimal(row.get("amount") or 0, "ledger amount")
        if row.get("direction") == "out" and amount > 0:
            amount = -amount
        entries.append(
            LedgerEntry(
                entry_id=str(row.get("id") or ""),
                asset=str(row.get("currency") or "").upper(),
                amount=amount,
                balance_after=optional_decimal(row.get("after"), "ledger after") or ZERO,
                type=_LEDGER_TYPES.get(str(row.get("type")), LedgerEntryType.OTHER),
                reference_id=str(row.get("referenceId") or ""),
                time=from_ms(row.get("timestamp")) or datetime.fromtimestamp(0, tz=UTC),
            )
        )
    entries.sort(key=lambda entry: entry.time, reverse=True)
    return entries
