"""plan_route: hand-computed plans and properties over random books (hypothesis)."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from titan_grpc.domain import PriceLevel, Side
from titan_grpc.market.pricing import VenueBook
from titan_grpc.trading.router import RoutePlan, _better, _net, _single_venue, plan_route


def book(
    name: str,
    asks: list[tuple[str, str]],
    fee: str = "0.001",
    step: str = "0",
    min_notional: str = "0",
    bids: list[tuple[str, str]] | None = None,
) -> VenueBook:
    def levels(rows: list[tuple[str, str]]) -> tuple[PriceLevel, ...]:
        return tuple(PriceLevel(D(p), D(q)) for p, q in rows)

    return VenueBook(name, levels(bids or []), levels(asks), D(fee), D(step), D(0), D(min_notional))


A = book("a", [("100", "1"), ("101", "2")], fee="0.001")
B = book("b", [("100.05", "1"), ("100.5", "5")], fee="0.002")


def test_split_beats_the_best_single_venue_by_the_hand_computed_amount() -> None:
    plan = plan_route([A, B], Side.BUY, D("3"))
    assert [(leg.exchange, leg.quantity, leg.notional, leg.fee) for leg in plan.legs] == [
        ("b", D("2"), D("200.55"), D("0.4011")),
        ("a", D("1"), D("100"), D("0.1")),
    ]
    assert (plan.filled, plan.unfilled, plan.total_fee) == (D("3"), D("0"), D("0.5011"))
    assert plan.net_notional == D("301.0511")
    assert plan.average_price == D("100.1833333333")
    assert (plan.best_single_exchange, plan.best_single_net) == ("b", D("301.6521"))
    assert plan.saving_vs_best_single == D("0.601")


def test_limit_price_caps_every_level_taken() -> None:
    plan = plan_route([A, B], Side.BUY, D("3"), limit=D("100.1"))
    assert [(leg.exchange, leg.quantity, leg.worst_price) for leg in plan.legs] == [
        ("a", D("1"), D("100")),
        ("b", D("1"), D("100.05")),
    ]
    assert plan.unfilled == D("1")


def test_step_rounding_that_would_lose_fill_falls_back_to_the_single_venue() -> None:
    coarse_b = book("b", [("100.05", "1"), ("100.5", "5")], fee="0.002", step="0.5")
    plan = plan_route([A, coarse_b], Side.BUY, D("2.3"))
    assert [(leg.exchange, leg.quantity) for leg in plan.legs] == [("a", D("2.3"))]
    assert plan.saving_vs_best_single == 0


def test_a_share_below_min_notional_is_rerouted() -> None:
    tiny = book("c", [("99", "0.5"), ("120", "10")], fee="0", min_notional="60")
    plan = plan_route([A, tiny], Side.BUY, D("1.5"))
    # c's share (0.5 @ 99 = 49.5) is under its 60 minimum: everything goes to a.
    assert [(leg.exchange, leg.quantity) for leg in plan.legs] == [("a", D("1.5"))]


def test_sells_walk_bids_richest_after_fees_first() -> None:
    x = book("x", [], fee="0.001", bids=[("100", "1"), ("99", "5")])
    y = book("y", [], fee="0.0", bids=[("99.95", "2")])
    plan = plan_route([x, y], Side.SELL, D("2.5"), limit=D("99"))
    # net: x100 -> 99.9, y99.95 -> 99.95 (best), x99 -> 98.901
    assert {(leg.exchange, leg.quantity) for leg in plan.legs} == {("y", D("2")), ("x", D("0.5"))}
    assert plan.net_notional == D("199.9") + D("50") - D("0.05")  # 2 @ 99.95 fee-free + 0.5 @ 100


def test_empty_books_give_an_empty_plan() -> None:
    plan = plan_route([book("e", [])], Side.BUY, D("1"))
    assert plan.legs == () and plan.unfilled == D("1") and plan.best_single_exchange == ""


# ---- properties ---------------------------------------------------------------------

STEPS = [D("0"), D("0.001"), D("0.01"), D("0.1")]
FEES = [D("0"), D("0.001"), D("0.0025"), D("0.006")]


@st.composite
def venue_books(draw: st.DrawFn, name: str) -> VenueBook:
    step = draw(st.sampled_from(STEPS))
    unit = step if step > 0 else D("0.001")

    def side(low: int, high: int) -> tuple[PriceLevel, ...]:
        prices = draw(st.lists(st.integers(low, high), min_size=0, max_size=5, unique=True))
        return tuple(PriceLevel(D(p) / 10, unit * draw(st.integers(1, 3000))) for p in prices)

    asks = tuple(sorted(side(1000, 1100), key=lambda level: level.price))
    bids = tuple(sorted(side(900, 1000), key=lambda level: level.price, reverse=True))
    return VenueBook(
        name,
        bids,
        asks,
        draw(st.sampled_from(FEES)),
        step,
        D(0),
        draw(st.sampled_from([D(0), D(0), D(50)])),
    )


@settings(max_examples=300, deadline=None)
@given(
    books=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True).flatmap(
        lambda names: st.tuples(*[venue_books(n) for n in names])
    ),
    side=st.sampled_from([Side.BUY, Side.SELL]),
    quantity=st.integers(1, 10000).map(lambda n: D(n) / 1000),
    limit=st.none() | st.integers(900, 1100).map(lambda n: D(n) / 10),
)
def test_plan_properties(
    books: tuple[VenueBook, ...], side: Side, quantity: D, limit: D | None
) -> None:
    plan: RoutePlan = plan_route(list(books), side, quantity, limit)
    # legs sum to the filled quantity, never more than asked
    assert sum((leg.quantity for leg in plan.legs), D(0)) == plan.filled <= quantity
    assert len({leg.exchange for leg in plan.legs}) == len(plan.legs)
    # never beyond the limit price
    for leg in plan.legs:
        if limit is not None:
            assert leg.worst_price <= limit if side is Side.BUY else leg.worst_price >= limit
    # never worse than any single venue under the same rules
    for single_book in books:
        single = _single_venue(single_book, side, quantity, limit)
        if single is not None:
            assert not _better(
                side,
                (single.quantity, _net(side, single.notional, single.fee)),
                (plan.filled, plan.net_notional),
            )
    # every leg respects its venue's step and minimums
    by_name = {b.exchange: b for b in books}
    for leg in plan.legs:
        venue = by_name[leg.exchange]
        if venue.step_size > 0:
            assert leg.quantity % venue.step_size == 0
        assert leg.notional >= venue.min_notional
