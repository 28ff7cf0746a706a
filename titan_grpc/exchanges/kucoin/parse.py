"""Pure functions from KuCoin JSON to domain objects; the envelope is unwrapped here once."""

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
    DuplicateOrder,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    MalformedResponse,
    OrderNotFound,
    OrderRejected,
    PermissionDenied,
    RateLimited,
    TitanError,
    UnknownSymbol,
)
from titan_grpc.exchanges.kucoin.endpoints import SUCCESS_CODE
from titan_grpc.net.rest import RestResponse

VENUE = "kucoin"

_TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
TIME_IN_FORCE_NAMES = {tif: name for name, tif in _TIME_IN_FORCE.items()}

# Codes (EXCHANGES-REFERENCE.md 3.5) -> taxonomy.
_CODES: dict[str, type[ExchangeError]] = {
    "400001": AuthenticationError,
    "400002": AuthenticationError,
    "400003": AuthenticationError,
    "400004": AuthenticationError,
    "400005": AuthenticationError,
    "400006": PermissionDenied,
    "400007": PermissionDenied,
    "400100": InvalidOrder,
    "400200": OrderRejected,
    "400600": UnknownSymbol,
    "900001": UnknownSymbol,
    "200004": InsufficientFunds,
    "126013": InsufficientFunds,
    "126043": OrderNotFound,
    "126044": DuplicateOrder,
    "429000": RateLimited,
    "500000": ExchangeUnavailable,
}


def decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise MalformedResponse(
            f"kucoin sent a malformed number {str(value)[:40]!r}", exchange=VENUE
        ) from None


def optional(data: Mapping[str, Any], key: str) -> Decimal | None:
    value = data.get(key)
    return None if value in (None, "") else decimal(value)


def from_ms(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    number = int(value)
    if number > 10**15:  # trade histories stamp in nanoseconds
        number //= 1_000_000
    return datetime.fromtimestamp(number / 1000, tz=UTC)


def parse_error(response: RestResponse) -> TitanError | None:
    """KuCoin reports errors as {code, msg}, with a 4xx status or inside an HTTP 200."""
    try:
        body = response.json()
    except TitanError:
        if response.status >= 400:
            return ExchangeError(f"kucoin HTTP {response.status}", exchange=VENUE)
        return None  # unreadable success bodies are reported by the caller
    if not isinstance(body, Mapping):
        return None
    code = str(body.get("code", ""))
    if code == SUCCESS_CODE and response.status < 400:
        return None
    message = str(body.get("msg", "")) or f"HTTP {response.status}"
    kind = _CODES.get(code)
    if kind is None:
        kind = AuthenticationError if response.status == 401 else ExchangeError
    text = f"kucoin {code}: {message}"
    details = {"exchange": VENUE, "venue_code": code, "venue_message": message}
    if kind is InvalidOrder:
        lowered = message.lower()
        field = "price" if "price" in lowered else "quantity" if "size" in lowered else ""
        return InvalidOrder(text, field=field, **details)
    if kind is RateLimited:
        return RateLimited(text, exchange=VENUE, venue_code=code, venue_message=message)
    return kind(text, **details)


def data(response: RestResponse) -> Any:
    """The ``data`` of a success envelope (errors were mapped before this)."""
    body = response.json()
    if not isinstance(body, Mapping) or "data" not in body:
        raise MalformedResponse("kucoin answer without a data envelope", exchange=VENUE)
    return body["data"]


def parse_symbols(
    rows: list[Mapping[str, Any]], maker_fee: Decimal, taker_fee: Decimal
) -> dict[Symbol, Market]:
    markets: dict[Symbol, Market] = {}
    for row in rows:
        symbol = Symbol(str(row["baseCurrency"]).upper(), str(row["quoteCurrency"]).upper())
        markets[symbol] = Market(
            exchange=VENUE,
            symbol=symbol,
            venue_symbol=str(row["symbol"]),
            tick_size=decimal(row["priceIncrement"]),
            step_size=decimal(row["baseIncrement"]),
            min_quantity=decimal(row.get("baseMinSize", "0")),
            max_quantity=optional(row, "baseMaxSize"),
            min_notional=optional(row, "minFunds") or ZERO,
            maker_fee_rate=maker_fee,
            taker_fee_rate=taker_fee,
            trading_enabled=bool(row.get("enableTrading", True)),
        )
    return markets


def parse_trade_fees(rows: Any) -> dict[str, tuple[Decimal, Decimal]]:
    """GET /api/v1/trade-fees: ``[{symbol, makerFeeRate, takerFeeRate}]`` by venue symbol."""
    return {
        str(row["symbol"]): (decimal(row["makerFeeRate"]), decimal(row["takerFeeRate"]))
        for row in rows or []
    }


def _levels(rows: Any, depth: int) -> tuple[PriceLevel, ...]:
    return tuple(PriceLevel(decimal(row[0]), decimal(row[1])) for row in (rows or [])[:depth])


def parse_book(
    payload: Mapping[str, Any], market: Market, depth: int, received: datetime
) -> OrderBook:
    return OrderBook(
        exchange=VENUE,
        symbol=market.symbol,
        venue_symbol=market.venue_symbol,
        bids=_levels(payload.get("bids"), depth),
        asks=_levels(payload.get("asks"), depth),
        sequence=int(payload.get("sequence") or 0),
        simulated=False,
        venue_time=from_ms(payload.get("time")),
        received_time=received,
    )


def parse_trades(rows: list[Mapping[str, Any]]) -> list[PublicTrade]:
    """KuCoin lists oldest first with the taker's side; we answer newest first."""
    trades = [
        PublicTrade(
            trade_id=str(row.get("sequence", "")),
            price=decimal(row["price"]),
            quantity=decimal(row["size"]),
            taker_side=Side.BUY if row.get("side") == "buy" else Side.SELL,
            time=from_ms(row.get("time")) or datetime.now(UTC),
        )
        for row in rows
    ]
    trades.reverse()
    return trades


def parse_accounts(rows: list[Mapping[str, Any]]) -> list[Balance]:
    totals: dict[str, tuple[Decimal, Decimal]] = {}
    for row in rows:
        if row.get("type") != "trade":
            continue
        free, held = totals.get(str(row["currency"]), (ZERO, ZERO))
        totals[str(row["currency"])] = (
            free + decimal(row["available"]),
            held + decimal(row["holds"]),
        )
    balances = [Balance(asset, free, held) for asset, (free, held) in totals.items()]
    return sorted((b for b in balances if b.total > 0), key=lambda b: b.asset)


def _status(row: Mapping[str, Any], size: Decimal, filled: Decimal) -> OrderStatus:
    if row.get("active") or row.get("isActive"):
        return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW
    if size > 0 and filled >= size:
        return OrderStatus.FILLED
    return OrderStatus.CANCELED


def parse_order(row: Mapping[str, Any], market: Market, received: datetime) -> Order:
    size = decimal(row.get("size") or "0")
    filled = decimal(row.get("dealSize") or "0")
    fee = optional(row, "fee")
    created = from_ms(row.get("createdAt")) or received
    price = optional(row, "price")
    return Order(
        exchange=VENUE,
        symbol=market.symbol,
        venue_symbol=market.venue_symbol,
        order_id=str(row["id"]),
        client_order_id=str(row.get("clientOid") or ""),
        side=Side.BUY if row.get("side") == "buy" else Side.SELL,
        type=OrderType.MARKET if row.get("type") == "market" else OrderType.LIMIT,
        time_in_force=_TIME_IN_FORCE.get(str(row.get("timeInForce")), TimeInForce.GTC),
        status=_status(row, size, filled),
        price=price if price else None,
        quantity=size,
        filled_quantity=filled,
        filled_quote_quantity=decimal(row.get("dealFunds") or "0"),
        fee=fee,
        fee_asset=str(row.get("feeCurrency") or "") if fee is not None else "",
        created_time=created,
        updated_time=from_ms(row.get("lastUpdatedAt")) or created,
        simulated=False,
    )


def parse_fill(row: Mapping[str, Any], market: Market) -> Fill:
    return Fill(
        trade_id=str(row["tradeId"]),
        order_id=str(row["orderId"]),
        client_order_id="",
        symbol=market.symbol,
        side=Side.BUY if row.get("side") == "buy" else Side.SELL,
        price=decimal(row["price"]),
        quantity=decimal(row["size"]),
        fee=decimal(row.get("fee", "0")),
        fee_asset=str(row.get("feeCurrency") or market.symbol.quote),
        liquidity=Liquidity.MAKER if row.get("liquidity") == "maker" else Liquidity.TAKER,
        time=from_ms(row.get("createdAt")) or datetime.now(UTC),
    )


_BIZ_TYPES = {
    "Exchange": LedgerEntryType.TRADE,
    "Trade_Exchange": LedgerEntryType.TRADE,
    "Deposit": LedgerEntryType.DEPOSIT,
    "Withdrawal": LedgerEntryType.WITHDRAWAL,
    "Transfer": LedgerEntryType.TRANSFER,
}


def parse_ledger_entry(row: Mapping[str, Any]) -> LedgerEntry:
    amount = decimal(row["amount"])
    if row.get("direction") == "out":
        amount = -amount
    return LedgerEntry(
        entry_id=str(row["id"]),
        asset=str(row["currency"]),
        amount=amount,
        balance_after=decimal(row["balance"]),
        type=_BIZ_TYPES.get(str(row.get("bizType")), LedgerEntryType.OTHER),
        reference_id=str(row.get("context") or ""),
        time=from_ms(row.get("createdAt")) or datetime.now(UTC),
    )
