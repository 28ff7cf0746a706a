"""Pure pricing over venue order books: book walks, best price net of fees, arbitrage.

All arithmetic is Decimal in MONEY_CONTEXT; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from titan_grpc.domain import MONEY_CONTEXT, ZERO, PriceLevel, Side
from titan_grpc.exchanges.filters import floor_to

PRICE_PLACES = Decimal("1e-10")


@dataclass(frozen=True, slots=True)
class VenueBook:
    """One venue's book for a symbol plus the rules that bound an order there."""

    exchange: str
    bids: tuple[PriceLevel, ...]  # best first
    asks: tuple[PriceLevel, ...]  # best first
    taker_fee_rate: Decimal
    step_size: Decimal = ZERO
    min_quantity: Decimal = ZERO
    min_notional: Decimal = ZERO
    simulated: bool = False

    def side_levels(self, side: Side) -> tuple[PriceLevel, ...]:
        """The levels an order on ``side`` takes from."""
        return self.asks if side is Side.BUY else self.bids


def net_price(price: Decimal, fee_rate: Decimal, side: Side) -> Decimal:
    """What one unit really costs (buy) or yields (sell) after the taker fee."""
    factor = 1 + fee_rate if side is Side.BUY else 1 - fee_rate
    return MONEY_CONTEXT.multiply(price, factor)


def within_limit(price: Decimal, limit: Decimal | None, side: Side) -> bool:
    if limit is None:
        return True
    return price <= limit if side is Side.BUY else price >= limit


@dataclass(frozen=True, slots=True)
class Walk:
    filled: Decimal
    notional: Decimal
    worst_price: Decimal | None

    @property
    def average(self) -> Decimal | None:
        if self.filled == 0:
            return None
        return MONEY_CONTEXT.divide(self.notional, self.filled).quantize(PRICE_PLACES)


def walk_book(
    levels: Sequence[PriceLevel],
    quantity: Decimal,
    limit: Decimal | None = None,
    side: Side = Side.BUY,
) -> Walk:
    """Take ``quantity`` from ``levels`` best first, within ``limit``."""
    with localcontext(MONEY_CONTEXT):
        remaining, notional, worst = quantity, ZERO, None
        for level in levels:
            if remaining <= 0 or not within_limit(level.price, limit, side):
                break
            take = min(level.quantity, remaining)
            notional += level.price * take
            remaining -= take
            worst = level.price
        return Walk(quantity - remaining, notional, worst)


@dataclass(frozen=True, slots=True)
class VenuePrice:
    exchange: str
    price: Decimal  # top of book, or the average fill for the quantity
    price_after_fees: Decimal
    taker_fee_rate: Decimal
    available_quantity: Decimal
    simulated: bool


def venue_prices(
    books: Sequence[VenueBook], side: Side, quantity: Decimal | None
) -> list[VenuePrice]:
    """Every venue's executable price for ``side``, best first (net of taker fees).

    With a quantity, a venue that cannot fill all of it is listed with what it can fill
    but ranks after every venue that can.
    """
    prices: list[VenuePrice] = []
    for book in books:
        levels = book.side_levels(side)
        if not levels:
            continue
        if quantity is None:
            exact, available = levels[0].price, levels[0].quantity
        else:
            walk = walk_book(levels, quantity, side=side)
            if walk.filled == 0:
                continue
            exact, available = MONEY_CONTEXT.divide(walk.notional, walk.filled), walk.filled
        prices.append(
            VenuePrice(
                book.exchange,
                exact.quantize(PRICE_PLACES),
                # from the exact average, so rounding happens once
                net_price(exact, book.taker_fee_rate, side).quantize(PRICE_PLACES),
                book.taker_fee_rate,
                available,
                book.simulated,
            )
        )

    def rank(item: VenuePrice) -> tuple[bool, Decimal]:
        short = quantity is not None and item.available_quantity < quantity
        return short, item.price_after_fees if side is Side.BUY else -item.price_after_fees

    return sorted(prices, key=rank)


@dataclass(frozen=True, slots=True)
class Opportunity:
    buy_exchange: str
    sell_exchange: str
    buy_price: Decimal  # average
    sell_price: Decimal  # average
    quantity: Decimal
    gross_profit: Decimal
    net_profit: Decimal


def _step(*books: VenueBook) -> Decimal:
    steps = [book.step_size for book in books if book.step_size > 0]
    return max(steps) if steps else ZERO


def arbitrage(books: Sequence[VenueBook]) -> list[Opportunity]:
    """Buy on A at its asks and sell on B at its bids while it pays after both fees.

    Only opportunities with positive net profit are returned, largest first. The
    executable quantity is floored to the coarser step size of the two venues.
    """
    found: list[Opportunity] = []
    with localcontext(MONEY_CONTEXT):
        for buy in books:
            for sell in books:
                if buy.exchange == sell.exchange or not buy.asks or not sell.bids:
                    continue
                quantity = _profitable_quantity(buy, sell)
                step = _step(buy, sell)
                if step > 0:
                    quantity = floor_to(quantity, step)
                if quantity <= 0:
                    continue
                bought = walk_book(buy.asks, quantity, side=Side.BUY)
                sold = walk_book(sell.bids, quantity, side=Side.SELL)
                gross = sold.notional - bought.notional
                net = sold.notional * (1 - sell.taker_fee_rate) - bought.notional * (
                    1 + buy.taker_fee_rate
                )
                if net <= 0:
                    continue
                assert bought.average is not None and sold.average is not None
                found.append(
                    Opportunity(
                        buy.exchange,
                        sell.exchange,
                        bought.average,
                        sold.average,
                        quantity,
                        gross,
                        net,
                    )
                )
    return sorted(found, key=lambda o: o.net_profit, reverse=True)


def _profitable_quantity(buy: VenueBook, sell: VenueBook) -> Decimal:
    """Quantity over which each marginal unit still earns after fees (two-pointer walk)."""
    asks = [[level.price, level.quantity] for level in buy.asks]
    bids = [[level.price, level.quantity] for level in sell.bids]
    i = j = 0
    total = ZERO
    while i < len(asks) and j < len(bids):
        cost = net_price(asks[i][0], buy.taker_fee_rate, Side.BUY)
        proceeds = net_price(bids[j][0], sell.taker_fee_rate, Side.SELL)
        if proceeds <= cost:
            break
        take = min(asks[i][1], bids[j][1])
        total += take
        asks[i][1] -= take
        bids[j][1] -= take
        if asks[i][1] == 0:
            i += 1
        if bids[j][1] == 0:
            j += 1
    return total
