"""Plain domain values shared by every layer: symbols, markets, books, orders.

Money is always ``Decimal``. Nothing here knows about gRPC, protobuf or HTTP.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Context, Decimal, InvalidOperation

from titan_grpc.errors import InvalidArgument, excerpt

# Precision for money arithmetic: wide enough that price * quantity of any accepted
# input is exact (inputs are limited to MAX_SIGNIFICANT_DIGITS).
MONEY_CONTEXT = Context(prec=60)
MAX_SIGNIFICANT_DIGITS = 28
MAX_ABS_EXPONENT = 20
MAX_DECIMAL_CHARS = 100

ZERO = Decimal(0)
# Averages are the one place a division happens on the wire; they carry 10 decimals.
AVERAGE_PRICE_QUANTUM = Decimal("1e-10")


class Side(enum.Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(enum.Enum):
    LIMIT = "limit"
    MARKET = "market"
    STOP_LIMIT = "stop_limit"  # becomes LIMIT when the last price reaches stop_price
    STOP_MARKET = "stop_market"  # becomes MARKET when the last price reaches stop_price

    @property
    def is_stop(self) -> bool:
        return self in (OrderType.STOP_LIMIT, OrderType.STOP_MARKET)

    @property
    def has_limit_price(self) -> bool:
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT)

    @property
    def triggered(self) -> OrderType:
        """The type a stop order becomes once triggered (itself for the others)."""
        if self is OrderType.STOP_LIMIT:
            return OrderType.LIMIT
        if self is OrderType.STOP_MARKET:
            return OrderType.MARKET
        return self


class TimeInForce(enum.Enum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class OrderStatus(enum.Enum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    PENDING = "pending"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class FeeSource(enum.Enum):
    DEFAULT = "default"  # the venue's published standard tier
    ACCOUNT = "account"  # the account's own rates, from the venue's fee endpoint


class Liquidity(enum.Enum):
    MAKER = "maker"
    TAKER = "taker"


class LedgerEntryType(enum.Enum):
    TRADE = "trade"
    FEE = "fee"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"
    OTHER = "other"


# Quote assets recognised when a symbol comes without a separator ("BTCUSDT").
# Longest match wins, so "FDUSD" beats "USD".
KNOWN_QUOTE_ASSETS: tuple[str, ...] = (
    "FDUSD",
    "USDT",
    "USDC",
    "BUSD",
    "TUSD",
    "USDP",
    "DAI",
    "USD",
    "EUR",
    "GBP",
    "TRY",
    "BRL",
    "JPY",
    "BTC",
    "ETH",
    "BNB",
    "KCS",
)

_ASSET_RE = re.compile(r"^[A-Z0-9]{1,20}$")
_SEPARATED_RE = re.compile(r"^([A-Za-z0-9]{1,20})[-/_]([A-Za-z0-9]{1,20})$")


@dataclass(frozen=True, slots=True)
class Symbol:
    """A market as BASE-QUOTE, e.g. ``Symbol("BTC", "USDT")``."""

    base: str
    quote: str
    # Symbols key the read path's caches, several look-ups per call: hashed once.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.base, self.quote)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[Symbol], tuple[str, str]]:
        return Symbol, (self.base, self.quote)  # hashed again where it is unpickled

    @property
    def canonical(self) -> str:
        return f"{self.base}-{self.quote}"

    def __str__(self) -> str:
        return self.canonical


@functools.lru_cache(maxsize=4096)  # hot path: the same few symbols on every read
def parse_symbol(text: str, field_name: str = "symbol") -> Symbol:
    """Parse ``BTC-USDT``, ``BTC/USDT``, ``btc_usdt`` or ``BTCUSDT`` into a Symbol."""
    raw = text.strip()
    if not raw:
        raise InvalidArgument(field_name, "is required (e.g. BTC-USDT)")
    match = _SEPARATED_RE.match(raw)
    if match:
        return Symbol(match.group(1).upper(), match.group(2).upper())
    upper = raw.upper()
    if not raw.isascii() or not _ASSET_RE.match(upper):
        raise InvalidArgument(
            field_name, f"{excerpt(text)} is not a symbol (use BASE-QUOTE, e.g. BTC-USDT)"
        )
    for quote in sorted(KNOWN_QUOTE_ASSETS, key=len, reverse=True):
        if upper.endswith(quote) and len(upper) > len(quote):
            return Symbol(upper[: -len(quote)], quote)
    raise InvalidArgument(
        field_name,
        f"cannot tell base from quote in {excerpt(text)}; write it as BASE-QUOTE (e.g. BTC-USDT)",
    )


def parse_asset(text: str, field_name: str) -> str:
    asset = text.strip().upper()
    # ASCII first: "ß".upper() is "SS", so the pattern alone would let it through.
    if not text.isascii() or not _ASSET_RE.match(asset):
        raise InvalidArgument(field_name, f"{excerpt(text)} is not an asset code (e.g. BTC)")
    return asset


# ASCII digits only: \d and Decimal() both accept any Unicode digit ("\u0663" is 3).
_DECIMAL_RE = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_decimal(
    text: str,
    field_name: str,
    *,
    required: bool = True,
    allow_zero: bool = False,
) -> Decimal | None:
    """Parse a wire decimal string strictly.

    Rejects empty (when required), NaN, infinities, exponents outside a sane range,
    more than MAX_SIGNIFICANT_DIGITS digits, negatives and (unless allowed) zero.
    Returns None for an empty optional value.
    """
    raw = text.strip()
    if not raw:
        if required:
            raise InvalidArgument(field_name, 'is required (a decimal string such as "0.01")')
        return None
    if len(raw) > MAX_DECIMAL_CHARS:
        raise InvalidArgument(field_name, f"is longer than {MAX_DECIMAL_CHARS} characters")
    if not _DECIMAL_RE.fullmatch(raw):
        raise InvalidArgument(field_name, f"{excerpt(text)} is not a decimal number")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidArgument(field_name, f"{excerpt(text)} is not a decimal number") from None
    if not value.is_finite():
        raise InvalidArgument(field_name, f"{excerpt(text)} is not a finite number")
    if value != 0 and abs(value.adjusted()) > MAX_ABS_EXPONENT:
        raise InvalidArgument(field_name, f"{excerpt(text)} is out of range")
    # Count digits without normalize(): that rounds to the context's precision.
    significant = "".join(map(str, value.as_tuple().digits)).strip("0")
    if len(significant) > MAX_SIGNIFICANT_DIGITS:
        raise InvalidArgument(
            field_name, f"{excerpt(text)} has more than {MAX_SIGNIFICANT_DIGITS} significant digits"
        )
    if value < 0:
        raise InvalidArgument(field_name, f"{excerpt(text)} must not be negative")
    if value == 0 and not allow_zero:
        raise InvalidArgument(field_name, "must be greater than zero")
    return value + ZERO  # drops a negative zero's sign


def format_decimal(value: Decimal | None) -> str:
    """Plain decimal string without exponent or superfluous trailing zeros."""
    if value is None:
        return ""
    text = format(value, "f")  # never an exponent
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@dataclass(frozen=True, slots=True)
class Market:
    """A tradable market on one venue and its rules."""

    exchange: str
    symbol: Symbol
    venue_symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_quantity: Decimal
    max_quantity: Decimal | None
    min_notional: Decimal
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal
    trading_enabled: bool = True
    fee_source: FeeSource = FeeSource.DEFAULT


@dataclass(frozen=True, slots=True)
class Ticker:
    exchange: str
    symbol: Symbol
    venue_symbol: str
    bid: Decimal | None
    bid_size: Decimal | None
    ask: Decimal | None
    ask_size: Decimal | None
    last: Decimal | None
    open_24h: Decimal | None
    high_24h: Decimal | None
    low_24h: Decimal | None
    volume_24h: Decimal | None
    quote_volume_24h: Decimal | None
    change_percent_24h: Decimal | None
    simulated: bool
    venue_time: datetime | None
    received_time: datetime
    # Set when the data comes from a substitute market (quote alias) or a fallback.
    note: str = ""
    # True when a real venue failed and the simulator answered instead.
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class PriceLevel:
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Bids best (highest) first, asks best (lowest) first."""

    exchange: str
    symbol: Symbol
    venue_symbol: str
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    sequence: int
    simulated: bool
    venue_time: datetime | None
    received_time: datetime
    # Set when the data comes from a substitute market (quote alias) or a fallback.
    note: str = ""
    # True when a real venue failed and the simulator answered instead.
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class PublicTrade:
    trade_id: str
    price: Decimal
    quantity: Decimal
    taker_side: Side
    time: datetime


@dataclass(frozen=True, slots=True)
class RecentTrades:
    exchange: str
    symbol: Symbol
    venue_symbol: str
    trades: tuple[PublicTrade, ...]  # newest first
    simulated: bool
    received_time: datetime
    # Set when the data comes from a substitute market (quote alias) or a fallback.
    note: str = ""
    # True when a real venue failed and the simulator answered instead.
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An order to place. ``quantity`` is in the base asset; a market order sized in the
    quote asset has ``quote_quantity`` set and ``quantity`` zero."""

    symbol: Symbol
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None
    time_in_force: TimeInForce
    client_order_id: str
    post_only: bool = False
    quote_quantity: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: str
    order_id: str
    client_order_id: str
    symbol: Symbol
    side: Side
    price: Decimal
    quantity: Decimal
    fee: Decimal
    fee_asset: str
    liquidity: Liquidity
    time: datetime

    @property
    def quote_quantity(self) -> Decimal:
        return MONEY_CONTEXT.multiply(self.price, self.quantity)


@dataclass(frozen=True, slots=True)
class Order:
    exchange: str
    symbol: Symbol
    venue_symbol: str
    order_id: str
    client_order_id: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    status: OrderStatus
    price: Decimal | None
    quantity: Decimal
    filled_quantity: Decimal
    filled_quote_quantity: Decimal
    fee: Decimal | None  # None when the venue's answer does not say (e.g. order queries)
    fee_asset: str
    created_time: datetime
    updated_time: datetime
    simulated: bool
    fills: tuple[Fill, ...] = ()
    status_reason: str = ""
    placed_by_gateway: bool = False
    stop_price: Decimal | None = None
    quote_quantity: Decimal | None = None  # the quote amount asked for (quote-sized orders)

    @property
    def average_fill_price(self) -> Decimal | None:
        """Volume-weighted fill price, rounded half-even to AVERAGE_PRICE_PLACES."""
        if self.filled_quantity == 0:
            return None
        average = MONEY_CONTEXT.divide(self.filled_quote_quantity, self.filled_quantity)
        return average.quantize(AVERAGE_PRICE_QUANTUM, context=MONEY_CONTEXT)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    entry_id: str
    asset: str
    amount: Decimal  # signed
    balance_after: Decimal
    type: LedgerEntryType
    reference_id: str
    time: datetime


@dataclass(frozen=True, slots=True)
class Quote:
    exchange: str
    symbol: Symbol
    venue_symbol: str
    bid: Decimal | None
    bid_size: Decimal | None
    ask: Decimal | None
    ask_size: Decimal | None
    last: Decimal | None
    simulated: bool
    venue_time: datetime | None
    received_time: datetime
    # Set when the data comes from a substitute market (quote alias) or a fallback.
    note: str = ""
    # True when a real venue failed and the simulator answered instead.
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A full L2 book as of ``sequence`` (venue update id), from REST or the stream."""

    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    sequence: int
    venue_time: datetime | None


@dataclass(frozen=True, slots=True)
class BookDiff:
    """Absolute level sizes (0 removes) covering venue updates first..last inclusive."""

    first_sequence: int
    last_sequence: int
    bids: tuple[PriceLevel, ...]
    asks: tuple[PriceLevel, ...]
    venue_time: datetime | None


@dataclass(frozen=True, slots=True)
class FeedInterrupted:
    """Yielded in-band by a live feed (``watch_quotes``/``watch_order_book``) when data may
    have been lost: a dropped connection or a sequence gap. Items after it are resynced."""

    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionCheck:
    """Outcome of a venue reachability check."""

    latency_seconds: float
    venue_time: datetime | None


@dataclass(frozen=True, slots=True)
class AuthCheck:
    permissions: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One change of one of the account's orders, from a venue's private feed.

    ``order`` is the order as it stands after the change (cumulative filled quantity,
    quote quantity, fee); ``fill`` is set when the change is a fill (each fill is
    reported once, in venue order per order). The gateway sets the order's
    ``placed_by_gateway`` (the venue does not know)."""

    order: Order
    fill: Fill | None
    venue_time: datetime


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """New totals of the assets that changed on one venue account."""

    exchange: str
    balances: tuple[Balance, ...]
    venue_time: datetime


AccountEvent = OrderUpdate | BalanceUpdate


@dataclass(frozen=True, slots=True)
class AccountFeedConnected:
    """Yielded by a private feed each time it is (re)subscribed: what follows is live;
    what changed before must be fetched from the venue (REST catch-up)."""


@dataclass(frozen=True, slots=True)
class FeedRecovered:
    """Yielded in-band by a feed that has caught up after a FeedInterrupted, when the
    next item may not come soon (the hub sends RECOVERED at once)."""
