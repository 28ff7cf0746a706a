"""Smart order routing: split one order across venues for the best average price.

``plan_route`` is a pure function over book snapshots. It walks all venues' levels
jointly, cheapest after taker fees first (for a sell: richest after fees first), within
the limit price; rounds each venue's share down to that venue's step size and drops
shares below its minimum size or notional; then compares the split with sending the
whole order to each single venue under the same rules and keeps the split only if it is
at least as good. So the plan is never worse than the best single venue, never crosses
the limit price, and its legs sum to the filled quantity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from titan_grpc.domain import MONEY_CONTEXT, ZERO, Side
from titan_grpc.exchanges.filters import floor_to
from titan_grpc.market.pricing import PRICE_PLACES, VenueBook, net_price, walk_book, within_limit

FEE_PLACES = Decimal("1e-8")


@dataclass(frozen=True, slots=True)
class RouteLeg:
    exchange: str
    quantity: Decimal
    notional: Decimal  # sum of price * quantity over the levels taken
    fee: Decimal
    worst_price: Decimal

    @property
    def average_price(self) -> Decimal:
        return MONEY_CONTEXT.divide(self.notional, self.quantity).quantize(PRICE_PLACES)


@dataclass(frozen=True, slots=True)
class RoutePlan:
    side: Side
    requested: Decimal
    legs: tuple[RouteLeg, ...]
    best_single_exchange: str
    best_single_net: Decimal  # net notional of the best single-venue plan ("" venue: 0)
    best_single_filled: Decimal

    @property
    def filled(self) -> Decimal:
        return sum((leg.quantity for leg in self.legs), ZERO)

    @property
    def unfilled(self) -> Decimal:
        return self.requested - self.filled

    @property
    def notional(self) -> Decimal:
        return sum((leg.notional for leg in self.legs), ZERO)

    @property
    def total_fee(self) -> Decimal:
        return sum((leg.fee for leg in self.legs), ZERO)

    @property
    def net_notional(self) -> Decimal:
        """Total cost including fees (buy) or proceeds after fees (sell)."""
        return _net(self.side, self.notional, self.total_fee)

    @property
    def average_price(self) -> Decimal | None:
        if self.filled == 0:
            return None
        return MONEY_CONTEXT.divide(self.notional, self.filled).quantize(PRICE_PLACES)

    @property
    def saving_vs_best_single(self) -> Decimal:
        """What the plan gains over the best single venue, per unit times plan quantity."""
        if self.filled == 0 or self.best_single_filled == 0:
            return ZERO
        with localcontext(MONEY_CONTEXT):
            plan_unit = self.net_notional / self.filled
            single_unit = self.best_single_net / self.best_single_filled
            per_unit = single_unit - plan_unit if self.side is Side.BUY else plan_unit - single_unit
            return (per_unit * self.filled).quantize(FEE_PLACES)


def _net(side: Side, notional: Decimal, fee: Decimal) -> Decimal:
    return notional + fee if side is Side.BUY else notional - fee


def _fee(notional: Decimal, rate: Decimal) -> Decimal:
    return MONEY_CONTEXT.multiply(notional, rate).quantize(FEE_PLACES)


def _leg(book: VenueBook, side: Side, quantity: Decimal, limit: Decimal | None) -> RouteLeg | None:
    """The leg for ``quantity`` on one venue, or None when its rules rule it out."""
    if quantity <= 0:
        return None
    walk = walk_book(book.side_levels(side), quantity, limit, side)
    if walk.filled < quantity or walk.worst_price is None:
        return None
    if quantity < book.min_quantity or walk.notional < book.min_notional:
        return None
    return RouteLeg(
        book.exchange,
        quantity,
        walk.notional,
        _fee(walk.notional, book.taker_fee_rate),
        walk.worst_price,
    )


def _round(book: VenueBook, quantity: Decimal) -> Decimal:
    return floor_to(quantity, book.step_size) if book.step_size > 0 else quantity


def _better(side: Side, a: tuple[Decimal, Decimal], b: tuple[Decimal, Decimal]) -> bool:
    """Is (filled, net) ``a`` better than ``b``? More filled wins; then the better net."""
    if a[0] != b[0]:
        return a[0] > b[0]
    return a[1] < b[1] if side is Side.BUY else a[1] > b[1]


def _single_venue(
    book: VenueBook, side: Side, quantity: Decimal, limit: Decimal | None
) -> RouteLeg | None:
    available = walk_book(book.side_levels(side), quantity, limit, side).filled
    return _leg(book, side, _round(book, min(available, quantity)), limit)


def _joint_allocation(
    books: Sequence[VenueBook], side: Side, quantity: Decimal, limit: Decimal | None
) -> dict[str, Decimal]:
    """Greedy take over all venues' levels, best net price first (optimal for linear fees)."""
    candidates = [
        (net_price(level.price, book.taker_fee_rate, side), index, book.exchange, level)
        for index, book in enumerate(books)
        for level in book.side_levels(side)
        if within_limit(level.price, limit, side)
    ]
    candidates.sort(key=lambda c: (c[0] if side is Side.BUY else -c[0], c[1]))
    allocation: dict[str, Decimal] = {}
    remaining = quantity
    for _, _, exchange, level in candidates:
        if remaining <= 0:
            break
        take = min(level.quantity, remaining)
        allocation[exchange] = allocation.get(exchange, ZERO) + take
        remaining -= take
    return allocation


def plan_route(
    books: Sequence[VenueBook], side: Side, quantity: Decimal, limit: Decimal | None = None
) -> RoutePlan:
    with localcontext(MONEY_CONTEXT):
        by_name = {book.exchange: book for book in books}
        singles = {
            book.exchange: leg
            for book in books
            if (leg := _single_venue(book, side, quantity, limit)) is not None
        }
        best_single: RouteLeg | None = None
        for leg in singles.values():
            if best_single is None or _better(
                side,
                (leg.quantity, _net(side, leg.notional, leg.fee)),
                (best_single.quantity, _net(side, best_single.notional, best_single.fee)),
            ):
                best_single = leg

        legs: list[RouteLeg] = []
        eligible = list(books)
        # Drop venues whose share cannot meet their minimums and re-run the joint walk
        # without them, until every share is valid.
        while eligible:
            allocation = _joint_allocation(eligible, side, quantity, limit)
            legs, dropped = [], []
            for exchange, share in allocation.items():
                book = by_name[exchange]
                leg = _leg(book, side, _round(book, share), limit)
                if leg is None:
                    dropped.append(exchange)
                else:
                    legs.append(leg)
            if not dropped:
                break
            eligible = [book for book in eligible if book.exchange not in dropped]

        split_notional = sum((leg.notional for leg in legs), ZERO)
        split_fee = sum((leg.fee for leg in legs), ZERO)
        split = (sum((leg.quantity for leg in legs), ZERO), _net(side, split_notional, split_fee))
        if best_single is not None:
            single = (best_single.quantity, _net(side, best_single.notional, best_single.fee))
            if _better(side, single, split):
                legs = [best_single]
        legs.sort(key=lambda leg: leg.quantity, reverse=True)
        return RoutePlan(
            side=side,
            requested=quantity,
            legs=tuple(legs),
            best_single_exchange=best_single.exchange if best_single else "",
            best_single_net=_net(side, best_single.notional, best_single.fee)
            if best_single
            else ZERO,
            best_single_filled=best_single.quantity if best_single else ZERO,
        )
