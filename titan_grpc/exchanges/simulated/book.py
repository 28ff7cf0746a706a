"""A simulated venue's order book and the fill arithmetic its matching engine applies
(all in Decimal; fees rounded half-up to 8 decimals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from titan_grpc.domain import MONEY_CONTEXT, ZERO, Side
from titan_grpc.exchanges.filters import floor_to

FEE_PRECISION = Decimal("0.00000001")


@dataclass(slots=True)
class Level:
    price: Decimal
    quantity: Decimal


@dataclass(slots=True)
class Book:
    bids: list[Level] = field(default_factory=list)  # best (highest) first
    asks: list[Level] = field(default_factory=list)  # best (lowest) first
    sequence: int = 0
    time: datetime | None = None


@dataclass(slots=True)
class Stats:
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    last: Decimal | None = None
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO

    def record_price(self, price: Decimal) -> None:
        if self.open is None:
            self.open = price
        self.high = price if self.high is None else max(self.high, price)
        self.low = price if self.low is None else min(self.low, price)


def fee_for(notional: Decimal, rate: Decimal) -> Decimal:
    return MONEY_CONTEXT.multiply(notional, rate).quantize(FEE_PRECISION, rounding=ROUND_HALF_UP)


def crosses(side: Side, level_price: Decimal, limit: Decimal | None) -> bool:
    if limit is None:
        return True
    return level_price <= limit if side is Side.BUY else level_price >= limit


def plan_quote_fills(
    levels: list[Level], quote_amount: Decimal, step: Decimal
) -> list[tuple[Decimal, Decimal]]:
    """(price, quantity) pairs taking ``levels`` best first, each in whole ``step``s,
    while their total cost stays within ``quote_amount``."""
    planned: list[tuple[Decimal, Decimal]] = []
    remaining = quote_amount
    for level in levels:
        affordable = floor_to(MONEY_CONTEXT.divide(remaining, level.price), step)
        take = min(level.quantity, affordable)
        if take <= 0:
            break
        planned.append((level.price, take))
        remaining -= MONEY_CONTEXT.multiply(level.price, take)
    return planned


def stop_reached(side: Side, mark: Decimal, stop_price: Decimal) -> bool:
    return mark >= stop_price if side is Side.BUY else mark <= stop_price


def plan_fills(
    levels: list[Level], side: Side, quantity: Decimal, limit: Decimal | None
) -> list[tuple[Decimal, Decimal]]:
    """(price, quantity) pairs taking ``levels`` best first, within ``limit``."""
    planned: list[tuple[Decimal, Decimal]] = []
    remaining = quantity
    for level in levels:
        if remaining <= 0 or not crosses(side, level.price, limit):
            break
        take = min(level.quantity, remaining)
        planned.append((level.price, take))
        remaining -= take
    return planned
