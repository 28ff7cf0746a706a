"""The local L2 book: sequenced diffs, gaps, stale drops, removals, crossed and stale books."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from titan_grpc.domain import PriceLevel
from titan_grpc.market.book import BookUnavailable, DiffResult, LocalBook


def lv(*rows: tuple[str, str]) -> list[PriceLevel]:
    return [PriceLevel(D(p), D(q)) for p, q in rows]


@pytest.fixture
def book() -> LocalBook:
    local = LocalBook()
    local.apply_snapshot(lv(("100", "1"), ("99", "2")), lv(("101", "1"), ("102", "3")), 10, now=0)
    return local


def test_diffs_apply_in_sequence_and_zero_removes(book: LocalBook) -> None:
    assert (
        book.apply_diff(11, 12, lv(("100", "0"), ("99.5", "4")), lv(("101", "2")), now=1)
        is DiffResult.APPLIED
    )
    bids, asks = book.levels(5, now=1, max_age_seconds=5)
    assert bids == tuple(lv(("99.5", "4"), ("99", "2")))
    assert asks == tuple(lv(("101", "2"), ("102", "3")))
    assert book.sequence == 12


def test_stale_diffs_are_dropped_and_overlaps_accepted(book: LocalBook) -> None:
    assert book.apply_diff(5, 10, lv(("100", "9")), [], now=1) is DiffResult.STALE
    assert (
        book.apply_diff(9, 11, lv(("100", "3")), [], now=1) is DiffResult.APPLIED
    )  # U <= seq+1 <= u
    assert book.levels(1, now=1, max_age_seconds=5)[0] == tuple(lv(("100", "3")))


def test_a_gap_stops_serving_until_a_snapshot(book: LocalBook) -> None:
    assert book.apply_diff(13, 14, lv(("100", "5")), [], now=1) is DiffResult.GAP
    with pytest.raises(BookUnavailable, match="not synced"):
        book.levels(5, now=1, max_age_seconds=5)
    assert book.apply_diff(15, 16, [], [], now=1) is DiffResult.GAP  # still waiting
    book.apply_snapshot(lv(("98", "1")), lv(("99", "1")), 20, now=2)
    assert book.levels(1, now=2, max_age_seconds=5) == (
        tuple(lv(("98", "1"))),
        tuple(lv(("99", "1"))),
    )


def test_crossed_or_stale_books_are_never_served(book: LocalBook) -> None:
    with pytest.raises(BookUnavailable, match="stale"):
        book.levels(5, now=100, max_age_seconds=5)
    book.apply_diff(11, 11, lv(("101.5", "1")), [], now=1)
    with pytest.raises(BookUnavailable, match="crossed"):
        book.levels(5, now=1, max_age_seconds=5)
    assert not book.synced


def test_many_levels_stay_sorted() -> None:
    local = LocalBook()
    local.apply_snapshot([], [], 0, now=0)
    for n in range(1, 2001):
        price = D(1000 + (n * 7919) % 2000) / 10
        local.apply_diff(
            n, n, [PriceLevel(price - 200, D(1))], [PriceLevel(price + 200, D(1))], now=0
        )
    bids, asks = local.levels(2000, now=0, max_age_seconds=1)
    assert [b.price for b in bids] == sorted((b.price for b in bids), reverse=True)
    assert [a.price for a in asks] == sorted(a.price for a in asks)
