"""Pure functions from Binance spot JSON to domain objects. Venue names stop here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from titan_grpc.domain import (
    ZERO,
    Balance,
    Fill,
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
from titan_grpc.errors import (
    AmbiguousOutcome,
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
from titan_grpc.net.rest import RestResponse

VENUE = "binance"

_STATUSES = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
    "PENDING_NEW": OrderStatus.PENDING,
}
_TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK}
TIME_IN_FORCE_NAMES = {tif: name for name, tif in _TIME_IN_FORCE.items()}
SIDE_NAMES = {Side.BUY: "BUY", Side.SELL: "SELL"}
# Binance's STOP_LOSS(_LIMIT) triggers a buy at or above and a sell at or below stopPrice.
ORDER_TYPE_NAMES = {
    OrderType.LIMIT: "LIMIT",
    OrderType.MARKET: "MARKET",
    OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT",
    OrderType.STOP_MARKET: "STOP_LOSS",
}
_ORDER_TYPES = {name: kind for kind, name in ORDER_TYPE_NAMES.items()} | {
    "LIMIT_MAKER": OrderType.LIMIT
}

# Error codes (EXCHANGES-REFERENCE.md 1.5) -> taxonomy. -2010 is refined by its message.
_ERROR_CLASSES: dict[int, type[ExchangeError]] = {
    -1000: ExchangeUnavailable,
    -1001: ExchangeUnavailable,
    -1003: RateLimited,
    -1006: ExchangeUnavailable,
    -1007: AmbiguousOutcome,  # "Timeout waiting for response ... execution status unknown"
    -1013: InvalidOrder,
    -1015: RateLimited,
    -1021: AuthenticationError,
    -1022: AuthenticationError,
    -1100: InvalidOrder,
    -1101: InvalidOrder,
    -1102: InvalidOrder,
    -1104: InvalidOrder,
    -1106: InvalidOrder,
    -1111: InvalidOrder,
    -1115: InvalidOrder,
    -1116: InvalidOrder,
    -1117: InvalidOrder,
    -1121: UnknownSymbol,
    -2010: OrderRejected,
    -2011: OrderNotFound,
    -2013: OrderNotFound,
    -2014: AuthenticationError,
    -2015: AuthenticationError,
}
_FILTER_FIELDS = {
    "PRICE_FILTER": "price",
    "PERCENT_PRICE": "price",
    "PERCENT_PRICE_BY_SIDE": "price",
    "LOT_SIZE": "quantity",
    "MARKET_LOT_SIZE": "quantity",
    "MIN_NOTIONAL": "quantity",
    "NOTIONAL": "quantity",
}


def decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise MalformedResponse(
            f"binance sent a malformed number {str(value)[:40]!r}", exchange=VENUE
        ) from None


def from_ms(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def parse_error(response: RestResponse) -> TitanError | None:
    """Map a non-2xx Binance answer to the taxonomy, keeping code and message."""
    if response.status < 400:
        return None
    try:
        body = response.json()
        code, message = int(body["code"]), str(body["msg"])
    except (TitanError, KeyError, TypeError, ValueError):
        return _http_error(response)
    kind = _ERROR_CLASSES.get(code)
    lowered = message.lower()
    if code == -2010 and "insufficient balance" in lowered:
        kind = InsufficientFunds
    elif code == -2010 and "duplicate" in lowered:
        kind = DuplicateOrder
    text = f"binance {code}: {message}"
    details = {"exchange": VENUE, "venue_code": str(code), "venue_message": message}
    if kind is InvalidOrder:
        filter_name = message.rsplit(":", 1)[-1].strip() if "Filter failure" in message else ""
        return InvalidOrder(text, field=_FILTER_FIELDS.get(filter_name, ""), **details)
    if kind is None:
        kind = _kind_for_status(response.status)
    return kind(text, **details)


def _kind_for_status(status: int) -> type[ExchangeError]:
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDenied
    return ExchangeError


def _http_error(response: RestResponse) -> TitanError:
    kind = _kind_for_status(response.status)
    return kind(f"binance HTTP {response.status}", exchange=VENUE)


def _rate_limit(info: Mapping[str, Any], kind: str, interval: str, count: int) -> int | None:
    for limit in info.get("rateLimits", []):
        if (
            limit.get("rateLimitType") == kind
            and limit.get("interval") == interval
            and int(limit.get("intervalNum", 0)) == count
        ):
            return int(limit["limit"])
    return None


def parse_weight_limit(info: Mapping[str, Any]) -> int | None:
    """REQUEST_WEIGHT per one minute from exchangeInfo.rateLimits."""
    return _rate_limit(info, "REQUEST_WEIGHT", "MINUTE", 1)


def parse_order_limit(info: Mapping[str, Any]) -> int | None:
    """ORDERS per 10 seconds (per account) from exchangeInfo.rateLimits."""
    return _rate_limit(info, "ORDERS", "SECOND", 10)


def parse_markets(
    info: Mapping[str, Any], maker_fee: Decimal, taker_fee: Decimal
) -> dict[Symbol, Market]:
    markets: dict[Symbol, Market] = {}
    for entry in info.get("symbols", []):
        symbol = Symbol(str(entry["baseAsset"]).upper(), str(entry["quoteAsset"]).upper())
        filters = {f["filterType"]: f for f in entry.get("filters", [])}
        price_filter = filters.get("PRICE_FILTER", {})
        lot = filters.get("LOT_SIZE", {})
        notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
        max_quantity = decimal(lot.get("maxQty", "0"))
        markets[symbol] = Market(
            exchange=VENUE,
            symbol=symbol,
            venue_symbol=str(entry["symbol"]),
            tick_size=decimal(price_filter.get("tickSize", "0")),
            step_size=decimal(lot.get("stepSize", "0")),
            min_quantity=decimal(lot.get("minQty", "0")),
            max_quantity=max_quantity if max_quantity > 0 else None,
            min_notional=decimal(notional.get("minNotional", "0")),
            maker_fee_rate=maker_fee,
            taker_fee_rate=taker_fee,
            trading_enabled=entry.get("status") == "TRADING",
        )
    return markets


def parse_commission_rates(account: Mapping[str, Any]) -> tuple[Decimal, Decimal] | None:
    rates = account.get("commissionRates")
    if not isinstance(rates, Mapping):
        return None
    return decimal(rates["maker"]), decimal(rates["taker"])


def _optional(data: Mapping[str, Any], key: str) -> Decimal | None:
    value = data.get(key)
    return None if value in (None, "") else decimal(value)


def parse_ticker(data: Mapping[str, Any], market: Market, received: datetime) -> Ticker:
    return Ticker(
        exchange=VENUE,
        symbol=market.symbol,
        venue_symbol=market.venue_symbol,
        bid=_optional(data, "bidPrice"),
        bid_size=_optional(data, "bidQty"),
        ask=_optional(data, "askPrice"),
        ask_size=_optional(data, "askQty"),
        last=_optional(data, "lastPrice"),
        open_24h=_optional(data, "openPrice"),
        high_24h=_optional(data, "highPrice"),
        low_24h=_optional(data, "lowPrice"),
        volume_24h=_optional(data, "volume"),
        quote_volume_24h=_optional(data, "quoteVolume"),
        change_percent_24h=_optional(data, "priceChangePercent"),
        simulated=False,
        venue_time=from_ms(data.get("closeTime")),
        received_time=received,
    )


def levels(rows: Any, depth: int | None = None) -> tuple[PriceLevel, ...]:
    """[price, size, ...] rows as price levels (the first ``depth`` of them)."""
    return tuple(PriceLevel(decimal(price), decimal(qty)) for price, qty, *_ in rows[:depth])


def parse_depth(
    data: Mapping[str, Any], market: Market, depth: int, received: datetime
) -> OrderBook:
    return OrderBook(
        exchange=VENUE,
        symbol=market.symbol,
        venue_symbol=market.venue_symbol,
        bids=levels(data.get("bids", []), depth),
        asks=levels(data.get("asks", []), depth),
        sequence=int(data.get("lastUpdateId", 0)),
        simulated=False,
        venue_time=None,
        received_time=received,
    )


def parse_trades(rows: list[Mapping[str, Any]]) -> list[PublicTrade]:
    """Binance lists oldest first; we answer newest first."""
    trades = [
        PublicTrade(
            trade_id=str(row["id"]),
            price=decimal(row["price"]),
            quantity=decimal(row["qty"]),
            # The buyer was the maker, so the taker sold.
            taker_side=Side.SELL if row.get("isBuyerMaker") else Side.BUY,
            time=from_ms(row["time"]) or datetime.now(UTC),
        )
        for row in rows
    ]
    trades.reverse()
    return trades


def parse_balances(account: Mapping[str, Any]) -> list[Balance]:
    balances = [
        Balance(str(row["asset"]), decimal(row["free"]), decimal(row["locked"]))
        for row in account.get("balances", [])
    ]
    return sorted((b for b in balances if b.total > 0), key=lambda b: b.asset)


def parse_order(data: Mapping[str, Any], market: Market, received: datetime) -> Order:
    side = Side.BUY if data["side"] == "BUY" else Side.SELL
    order_type = _ORDER_TYPES.get(str(data.get("type")), OrderType.LIMIT)
    price = decimal(data.get("price", "0"))
    transact = from_ms(data.get("transactTime"))
    created = from_ms(data.get("time")) or transact or received
    updated = from_ms(data.get("updateTime")) or transact or created
    order_id = str(data["orderId"])
    client_order_id = str(data.get("clientOrderId") or data.get("origClientOrderId") or "")
    fills = tuple(
        Fill(
            trade_id=str(row.get("tradeId", "")),
            order_id=order_id,
            client_order_id=client_order_id,
            symbol=market.symbol,
            side=side,
            price=decimal(row["price"]),
            quantity=decimal(row["qty"]),
            fee=decimal(row["commission"]),
            fee_asset=str(row["commissionAsset"]),
            liquidity=Liquidity.TAKER,  # fills in the placement answer took liquidity
            time=updated,
        )
        for row in data.get("fills", [])
    )
    fee: Decimal | None = None
    fee_asset = ""
    if fills:
        fee_asset = fills[0].fee_asset
        fee = sum((f.fee for f in fills if f.fee_asset == fee_asset), ZERO)
    return Order(
        exchange=VENUE,
        symbol=market.symbol,
        venue_symbol=market.venue_symbol,
        order_id=order_id,
        client_order_id=client_order_id,
        side=side,
        type=order_type,
        time_in_force=_TIME_IN_FORCE.get(str(data.get("timeInForce")), TimeInForce.GTC),
        status=_STATUSES.get(str(data.get("status")), OrderStatus.PENDING),
        price=price if price > 0 else None,
        quantity=decimal(data.get("origQty", "0")),
        filled_quantity=decimal(data.get("executedQty", "0")),
        filled_quote_quantity=max(decimal(data.get("cummulativeQuoteQty", "0")), ZERO),
        fee=fee,
        fee_asset=fee_asset,
        created_time=created,
        updated_time=updated,
        simulated=False,
        fills=fills,
        stop_price=_optional_positive(data, "stopPrice"),
        quote_quantity=_optional_positive(data, "origQuoteOrderQty"),
    )


def _optional_positive(data: Mapping[str, Any], key: str) -> Decimal | None:
    # Binance answers "0.00000000" for fields that do not apply.
    value = _optional(data, key)
    return value if value is not None and value > 0 else None


def parse_my_trade(row: Mapping[str, Any], market: Market) -> Fill:
    return Fill(
        trade_id=str(row["id"]),
        order_id=str(row["orderId"]),
        client_order_id="",
        symbol=market.symbol,
        side=Side.BUY if row.get("isBuyer") else Side.SELL,
        price=decimal(row["price"]),
        quantity=decimal(row["qty"]),
        fee=decimal(row["commission"]),
        fee_asset=str(row["commissionAsset"]),
        liquidity=Liquidity.MAKER if row.get("isMaker") else Liquidity.TAKER,
        time=from_ms(row["time"]) or datetime.now(UTC),
    )
