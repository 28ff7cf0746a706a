"""A paper-trading matching engine for one simulated venue.

Rules (all arithmetic in Decimal):
* Market orders walk the opposite side of the book best price first. Whatever the book
  cannot fill expires (IOC semantics); FOK fills completely or not at all.
* Limit orders that cross take liquidity up to their limit price. The rest: GTC rests
  (funds locked) until the market moves through its price or it is cancelled; IOC and
  FOK rest expire (FOK all or nothing). A post-only limit order that would cross is
  rejected.
* Taking fills pay the taker fee, resting fills the maker fee; fees are charged in the
  quote asset, rounded half-up to 8 decimals per fill.
* An order that would spend more than the free balance is rejected (InsufficientFunds)
  before anything moves.
* A market order sized in the quote asset (``quote_quantity``) takes, level by level,
  the most base quantity in whole steps whose cost stays within the quote amount.
* Stop orders rest untriggered (nothing locked) until the venue's mid price reaches the
  stop price (at or above it for a buy, at or below for a sell), then run as the limit or
  market order they carry, as if placed at that moment; one whose stop price is already
  reached is rejected, as Binance does. Funds are checked when it triggers: if short,
  the order ends REJECTED.
* Listeners (the private feed) hear every order change and fill as it happens, in the
  venue's order (new, fills, final state), then the balances that moved.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_UP, Decimal, localcontext

from titan_grpc.domain import (
    MONEY_CONTEXT,
    ZERO,
    AccountEvent,
    Balance,
    BalanceUpdate,
    Fill,
    LedgerEntry,
    LedgerEntryType,
    Liquidity,
    Market,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    PriceLevel,
    PublicTrade,
    Side,
    Symbol,
    TimeInForce,
    format_decimal,
)
from titan_grpc.errors import (
    DuplicateOrder,
    InsufficientFunds,
    InvalidOrder,
    OrderNotCancelable,
    OrderNotFound,
    OrderRejected,
    UnknownSymbol,
)
from titan_grpc.exchanges.filters import check_order_filters
from titan_grpc.exchanges.simulated.book import (
    FEE_PRECISION,
    Book,
    Level,
    Stats,
    crosses,
    fee_for,
    plan_fills,
    plan_quote_fills,
    stop_reached,
)
from titan_grpc.exchanges.simulated.wallet import Wallet
from titan_grpc.paging import Page, PageRequest, page_back

PUBLIC_TRADES_KEPT = 1000


@dataclass(slots=True)
class _OrderRecord:
    order_id: str
    request: OrderRequest
    market: Market
    time_in_force: TimeInForce
    status: OrderStatus
    created: datetime
    updated: datetime
    filled_quantity: Decimal = ZERO
    filled_quote: Decimal = ZERO
    fee: Decimal = ZERO
    fills: list[Fill] = field(default_factory=list)
    reason: str = ""
    locked_amount: Decimal = ZERO  # quote for resting buys, base for resting sells
    triggered: bool = True  # False while a stop order waits for its stop price
    quantity: Decimal = ZERO  # base quantity (quote-sized orders: what the quote bought)
    reported: OrderStatus | None = None  # last status told to the private feed

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


class MatchingEngine:
    """Books, balances, orders, fills and ledger of one simulated venue."""

    def __init__(
        self,
        exchange: str,
        markets: dict[Symbol, Market],
        initial_balances: dict[str, Decimal],
        clock: Callable[[], datetime],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.exchange = exchange
        self.markets = markets
        self._clock = clock
        self._on_change = on_change
        self._books: dict[Symbol, Book] = {symbol: Book() for symbol in markets}
        self._stats: dict[Symbol, Stats] = {symbol: Stats() for symbol in markets}
        self._trades: dict[Symbol, deque[PublicTrade]] = {
            symbol: deque(maxlen=PUBLIC_TRADES_KEPT) for symbol in markets
        }
        self._orders: dict[str, _OrderRecord] = {}
        self._marks: dict[Symbol, Decimal] = {}  # the mid that stop orders watch
        self._by_client_id: dict[str, str] = {}
        self._fills: list[Fill] = []
        # The private feed: called synchronously with every account event.
        self.account_listeners: list[Callable[[AccountEvent], None]] = []
        prefix = exchange[:3].upper()
        self._order_ids = (f"SIM-{prefix}-{n:08d}" for n in itertools.count(1))
        self._trade_ids = (f"{prefix}-T{n:010d}" for n in itertools.count(1))
        self._wallet = Wallet(prefix, initial_balances, clock())

    # ---- market data -------------------------------------------------------------

    def market(self, symbol: Symbol) -> Market:
        try:
            return self.markets[symbol]
        except KeyError:
            raise UnknownSymbol(
                f"{self.exchange} does not list {symbol.canonical}", exchange=self.exchange
            ) from None

    def book(self, symbol: Symbol, depth: int) -> tuple[list[PriceLevel], list[PriceLevel], int]:
        self.market(symbol)
        book = self._books[symbol]
        bids = [PriceLevel(level.price, level.quantity) for level in book.bids[:depth]]
        asks = [PriceLevel(level.price, level.quantity) for level in book.asks[:depth]]
        return bids, asks, book.sequence

    def stats(self, symbol: Symbol) -> Stats:
        self.market(symbol)
        return self._stats[symbol]

    def public_trades(self, symbol: Symbol, limit: int) -> list[PublicTrade]:
        self.market(symbol)
        trades = self._trades[symbol]
        return list(itertools.islice(reversed(trades), limit))

    def set_book(
        self, symbol: Symbol, bids: list[PriceLevel], asks: list[PriceLevel], mid: Decimal
    ) -> None:
        """Replace the synthetic liquidity and fill resting orders the market moved through."""
        book = self._books[symbol]
        book.bids = [Level(level.price, level.quantity) for level in bids]
        book.asks = [Level(level.price, level.quantity) for level in asks]
        book.sequence += 1
        book.time = self._clock()
        self._stats[symbol].record_price(mid)
        self._marks[symbol] = mid
        self._fill_resting(symbol)
        self._trigger_stops(symbol)

    def record_public_trade(
        self, symbol: Symbol, price: Decimal, quantity: Decimal, taker: Side
    ) -> None:
        stats = self._stats[symbol]
        stats.last = price
        stats.record_price(price)
        stats.volume += quantity
        stats.quote_volume += MONEY_CONTEXT.multiply(price, quantity)
        self._trades[symbol].append(
            PublicTrade(next(self._trade_ids), price, quantity, taker, self._clock())
        )

    # ---- account -----------------------------------------------------------------

    def balances(self) -> list[Balance]:
        return self._wallet.balances()

    def place(self, request: OrderRequest) -> Order:
        with localcontext(MONEY_CONTEXT):
            try:
                return self._place(request)
            finally:
                self._report_balances()

    def _place(self, request: OrderRequest) -> Order:
        market = self.market(request.symbol)
        tif = self._effective_time_in_force(request)
        if request.client_order_id in self._by_client_id:
            raise DuplicateOrder(
                f"an order with client_order_id {request.client_order_id!r} already exists",
                exchange=self.exchange,
            )
        book = self._books[request.symbol]
        opposite = book.asks if request.side is Side.BUY else book.bids
        reference = opposite[0].price if opposite else None
        check_order_filters(market, request, reference)
        now = self._clock()
        record = _OrderRecord(
            order_id="",
            request=request,
            market=market,
            time_in_force=tif,
            status=OrderStatus.NEW,
            created=now,
            updated=now,
            quantity=request.quantity,
        )
        if request.type.is_stop:
            assert request.stop_price is not None
            mark = self._marks.get(request.symbol)
            if mark is not None and stop_reached(request.side, mark, request.stop_price):
                raise OrderRejected(
                    f"stop price {format_decimal(request.stop_price)} would trigger "
                    f"immediately (market at {format_decimal(mark)})",
                    exchange=self.exchange,
                )
            record.triggered = False
        else:
            self._match(record)  # raises before anything moves when it cannot be placed
        record.order_id = next(self._order_ids)
        self._orders[record.order_id] = record
        self._by_client_id[request.client_order_id] = record.order_id
        self._report(record)
        if record.triggered:
            self._execute(record)
        self._on_change()
        return self._snapshot(record)

    def _match(self, record: _OrderRecord) -> list[tuple[Decimal, Decimal]]:
        """The fills ``record`` would get now (and its quantity when quote-sized); raises
        OrderRejected / InsufficientFunds without changing anything."""
        request, market = record.request, record.market
        kind, tif = request.type.triggered, record.time_in_force
        book = self._books[request.symbol]
        opposite = book.asks if request.side is Side.BUY else book.bids
        limit = request.price if kind is OrderType.LIMIT else None
        would_take = bool(opposite) and crosses(request.side, opposite[0].price, limit)
        if request.post_only and would_take:
            raise OrderRejected(
                "post-only order would take liquidity (best opposite price "
                f"{format_decimal(opposite[0].price)})",
                exchange=self.exchange,
            )
        if request.quote_quantity is not None:
            planned = plan_quote_fills(opposite, request.quote_quantity, market.step_size)
            record.quantity = sum((quantity for _, quantity in planned), ZERO)
        else:
            planned = plan_fills(opposite, request.side, record.quantity, limit)
        planned_quantity = sum((quantity for _, quantity in planned), ZERO)
        if tif is TimeInForce.FOK and planned_quantity != record.quantity:
            planned = []
        will_rest = tif is TimeInForce.GTC and kind is OrderType.LIMIT
        rest_quantity = record.quantity - planned_quantity if will_rest else ZERO
        self._check_funds(market, request, planned, rest_quantity)
        return planned

    def _execute(self, record: _OrderRecord) -> None:
        """Fill ``record`` against the book now; rest or expire what is left."""
        planned = self._match(record)
        book = self._books[record.request.symbol]
        opposite = book.asks if record.request.side is Side.BUY else book.bids
        for price, quantity in planned:
            self._take(record, opposite, price, quantity)
        will_rest = (
            record.time_in_force is TimeInForce.GTC
            and record.request.type.triggered is OrderType.LIMIT
        )
        if record.remaining == 0 and record.quantity > 0:
            record.status = OrderStatus.FILLED
        elif will_rest:
            self._lock_for_rest(record)
            record.status = (
                OrderStatus.PARTIALLY_FILLED if record.filled_quantity else OrderStatus.NEW
            )
        else:
            record.status = OrderStatus.EXPIRED
            record.reason = self._expiry_reason(record, record.time_in_force)
        if planned:
            book.sequence += 1
        self._report(record)

    def _trigger_stops(self, symbol: Symbol) -> None:
        mark = self._marks[symbol]
        changed = False
        with localcontext(MONEY_CONTEXT):
            for record in list(self._orders.values()):
                request = record.request
                if (
                    record.triggered
                    or request.symbol != symbol
                    or not record.status.is_open
                    or request.stop_price is None
                    or not stop_reached(request.side, mark, request.stop_price)
                ):
                    continue
                record.triggered = True
                record.updated = self._clock()
                try:
                    self._execute(record)
                except (InsufficientFunds, OrderRejected, InvalidOrder) as error:
                    record.status = OrderStatus.REJECTED
                    record.reason = f"stop triggered at {format_decimal(mark)}: {error.message}"
                    self._report(record)
                changed = True
        self._report_balances()
        if changed:
            self._on_change()

    def cancel(self, *, order_id: str = "", client_order_id: str = "") -> Order:
        record = self._find(order_id, client_order_id)
        if not record.status.is_open:
            raise OrderNotCancelable(
                f"order {record.order_id} is already {record.status.value}", exchange=self.exchange
            )
        self._release_lock(record)
        record.status = OrderStatus.CANCELED
        record.reason = "cancelled by request"
        record.updated = self._clock()
        self._report(record)
        self._report_balances()
        self._on_change()
        return self._snapshot(record)

    def order(self, *, order_id: str = "", client_order_id: str = "") -> Order:
        return self._snapshot(self._find(order_id, client_order_id))

    def open_orders(self, symbol: Symbol | None) -> list[Order]:
        return [
            self._snapshot(record)
            for record in self._orders.values()
            if record.status.is_open and (symbol is None or record.request.symbol == symbol)
        ]

    def fills(self, symbol: Symbol | None, order_id: str, limit: int) -> list[Fill]:
        selected = (
            fill
            for fill in reversed(self._fills)
            if (symbol is None or fill.symbol == symbol)
            and (not order_id or fill.order_id == order_id)
        )
        return list(itertools.islice(selected, limit))

    def ledger(self, asset: str | None, limit: int) -> list[LedgerEntry]:
        entries = self._wallet.entries
        selected = (e for e in reversed(entries) if asset is None or e.asset == asset)
        return list(itertools.islice(selected, limit))

    def fills_page(self, symbol: Symbol | None, order_id: str, page: PageRequest) -> Page[Fill]:
        """Newest first; the cursor is the position of the last fill returned."""
        return page_back(
            self._fills,
            page,
            lambda f: (
                (symbol is None or f.symbol == symbol)
                and (not order_id or f.order_id == order_id)
                and page.covers(f.time)
            ),
        )

    def ledger_page(self, asset: str | None, page: PageRequest) -> Page[LedgerEntry]:
        return page_back(
            self._wallet.entries,
            page,
            lambda e: (asset is None or e.asset == asset) and page.covers(e.time),
        )

    # ---- internals ---------------------------------------------------------------

    def _effective_time_in_force(self, request: OrderRequest) -> TimeInForce:
        if request.type.triggered is OrderType.MARKET:
            if request.time_in_force is TimeInForce.GTC:
                raise InvalidOrder(
                    "market orders cannot rest: use IOC or FOK (or leave time_in_force unset)",
                    field="time_in_force",
                    exchange=self.exchange,
                )
            if request.post_only:
                raise InvalidOrder(
                    "post_only applies to limit orders only",
                    field="post_only",
                    exchange=self.exchange,
                )
        return request.time_in_force

    def _expiry_reason(self, record: _OrderRecord, tif: TimeInForce) -> str:
        unfilled = format_decimal(record.remaining)
        if tif is TimeInForce.FOK:
            return f"FOK: the book could not fill the whole quantity ({unfilled} short)"
        if record.request.type.triggered is OrderType.MARKET:
            return f"market order: book exhausted, {unfilled} unfilled"
        return f"IOC: unfilled remainder {unfilled} expired"

    def _check_funds(
        self,
        market: Market,
        request: OrderRequest,
        planned: list[tuple[Decimal, Decimal]],
        rest_quantity: Decimal,
    ) -> None:
        base, quote = market.symbol.base, market.symbol.quote
        if request.side is Side.BUY:
            needed = sum(
                (
                    price * quantity + fee_for(price * quantity, market.taker_fee_rate)
                    for price, quantity in planned
                ),
                ZERO,
            )
            if rest_quantity and request.price is not None:
                needed += self._rest_lock(market, request.price, rest_quantity)
            available, asset = self._wallet.free(quote), quote
        else:
            needed = sum((quantity for _, quantity in planned), ZERO) + rest_quantity
            available, asset = self._wallet.free(base), base
        if needed > available:
            raise InsufficientFunds(
                f"insufficient {asset}: order needs {format_decimal(needed)}, "
                f"{format_decimal(available)} free",
                exchange=self.exchange,
            )

    @staticmethod
    def _rest_lock(market: Market, price: Decimal, quantity: Decimal) -> Decimal:
        notional = price * quantity
        return (notional + notional * market.maker_fee_rate).quantize(
            FEE_PRECISION, rounding=ROUND_UP
        )

    def _lock_for_rest(self, record: _OrderRecord) -> None:
        market, request = record.market, record.request
        if request.side is Side.BUY:
            assert request.price is not None
            amount = self._rest_lock(market, request.price, record.remaining)
            asset = market.symbol.quote
        else:
            amount, asset = record.remaining, market.symbol.base
        self._wallet.lock(asset, amount)
        record.locked_amount = amount

    def _release_lock(self, record: _OrderRecord) -> None:
        if not record.locked_amount:
            return
        symbol = record.market.symbol
        asset = symbol.quote if record.request.side is Side.BUY else symbol.base
        self._wallet.unlock(asset, record.locked_amount)
        record.locked_amount = ZERO

    def _take(
        self, record: _OrderRecord, opposite: list[Level], price: Decimal, quantity: Decimal
    ) -> None:
        level = opposite[0]
        level.quantity -= quantity
        if level.quantity == 0:
            opposite.pop(0)
        self._settle(record, price, quantity, Liquidity.TAKER)
        self.record_public_trade(record.market.symbol, price, quantity, record.request.side)

    def _fill_resting(self, symbol: Symbol) -> None:
        book = self._books[symbol]
        changed = False
        with localcontext(MONEY_CONTEXT):
            for record in list(self._orders.values()):
                request = record.request
                if request.symbol != symbol or not record.status.is_open or not record.triggered:
                    continue
                assert request.price is not None
                moved_through = (
                    bool(book.asks) and book.asks[0].price <= request.price
                    if request.side is Side.BUY
                    else bool(book.bids) and book.bids[0].price >= request.price
                )
                if not moved_through:
                    continue
                quantity = record.remaining
                self._release_lock(record)
                self._settle(record, request.price, quantity, Liquidity.MAKER)
                self.record_public_trade(symbol, request.price, quantity, request.side.opposite)
                record.status = OrderStatus.FILLED
                changed = True
        self._report_balances()
        if changed:
            self._on_change()

    def _settle(
        self, record: _OrderRecord, price: Decimal, quantity: Decimal, liquidity: Liquidity
    ) -> None:
        market, request = record.market, record.request
        base, quote = market.symbol.base, market.symbol.quote
        rate = market.taker_fee_rate if liquidity is Liquidity.TAKER else market.maker_fee_rate
        notional = price * quantity
        fee = fee_for(notional, rate)
        now = self._clock()
        if request.side is Side.BUY:
            self._wallet.adjust(base, quantity, LedgerEntryType.TRADE, record.order_id, now)
            self._wallet.adjust(quote, -notional, LedgerEntryType.TRADE, record.order_id, now)
        else:
            self._wallet.adjust(base, -quantity, LedgerEntryType.TRADE, record.order_id, now)
            self._wallet.adjust(quote, notional, LedgerEntryType.TRADE, record.order_id, now)
        if fee:
            self._wallet.adjust(quote, -fee, LedgerEntryType.FEE, record.order_id, now)
        fill = Fill(
            trade_id=next(self._trade_ids),
            order_id=record.order_id,
            client_order_id=request.client_order_id,
            symbol=market.symbol,
            side=request.side,
            price=price,
            quantity=quantity,
            fee=fee,
            fee_asset=quote,
            liquidity=liquidity,
            time=now,
        )
        self._fills.append(fill)
        record.fills.append(fill)
        record.filled_quantity += quantity
        record.filled_quote += notional
        record.fee += fee
        record.updated = now
        record.status = (
            OrderStatus.FILLED if record.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        )
        self._report(record, fill)

    def _report(self, record: _OrderRecord, fill: Fill | None = None) -> None:
        """Tell the private feed about a fill, or a status it has not heard yet."""
        if not self.account_listeners or (fill is None and record.reported is record.status):
            return
        record.reported = record.status
        event = OrderUpdate(self._snapshot(record), fill, record.updated)
        for listener in list(self.account_listeners):
            listener(event)

    def _report_balances(self) -> None:
        balances = self._wallet.take_moved()
        if not balances or not self.account_listeners:
            return
        event = BalanceUpdate(self.exchange, balances, self._clock())
        for listener in list(self.account_listeners):
            listener(event)

    def _find(self, order_id: str, client_order_id: str) -> _OrderRecord:
        key = order_id or self._by_client_id.get(client_order_id, "")
        record = self._orders.get(key)
        if record is None or (
            client_order_id and record.request.client_order_id != client_order_id
        ):
            wanted = (
                f"order_id {order_id!r}" if order_id else f"client_order_id {client_order_id!r}"
            )
            raise OrderNotFound(
                f"no order with {wanted} on {self.exchange}", exchange=self.exchange
            )
        return record

    def _snapshot(self, record: _OrderRecord) -> Order:
        request, market = record.request, record.market
        return Order(
            exchange=self.exchange,
            symbol=market.symbol,
            venue_symbol=market.venue_symbol,
            order_id=record.order_id,
            client_order_id=request.client_order_id,
            side=request.side,
            type=request.type,
            time_in_force=record.time_in_force,
            status=record.status,
            price=request.price,
            quantity=record.quantity,
            filled_quantity=record.filled_quantity,
            filled_quote_quantity=record.filled_quote,
            fee=record.fee,
            fee_asset=market.symbol.quote,
            created_time=record.created,
            updated_time=record.updated,
            simulated=True,
            fills=tuple(record.fills),
            status_reason=record.reason,
            stop_price=request.stop_price,
            quote_quantity=request.quote_quantity,
        )
