"""Book walks, best price net of fees, arbitrage, consolidation and portfolio valuation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from titan_grpc.domain import Balance, PriceLevel, Side, Symbol, Ticker
from titan_grpc.market.aggregate import consolidate
from titan_grpc.market.portfolio import MarketPrice, value_portfolio
from titan_grpc.market.pricing import VenueBook, arbitrage, venue_prices, walk_book

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def levels(*rows: tuple[str, str]) -> tuple[PriceLevel, ...]:
    return tuple(PriceLevel(D(p), D(q)) for p, q in rows)


def test_walk_book_averages_over_levels_within_a_limit() -> None:
    asks = levels(("100", "1"), ("101", "1"), ("105", "5"))
    walk = walk_book(asks, D("1.5"))
    assert (walk.filled, walk.notional, walk.average, walk.worst_price) == (
        D("1.5"),
        D("150.5"),
        D("100.3333333333"),
        D("101"),
    )
    capped = walk_book(asks, D("3"), limit=D("101"))
    assert (capped.filled, capped.notional) == (D("2"), D("201"))


def test_best_price_is_net_of_fees_and_walks_the_book_for_a_quantity() -> None:
    cheap_but_costly = VenueBook("a", levels(), levels(("100", "1"), ("102", "5")), D("0.006"))
    dearer_but_cheap = VenueBook(
        "b", levels(), levels(("100.3", "0.5"), ("100.4", "5")), D("0.001")
    )
    top = venue_prices([cheap_but_costly, dearer_but_cheap], Side.BUY, None)
    # a: 100 * 1.006 = 100.6; b: 100.3 * 1.001 = 100.4003
    assert [(p.exchange, p.price_after_fees) for p in top] == [
        ("b", D("100.4003")),
        ("a", D("100.6")),
    ]
    deep = venue_prices([cheap_but_costly, dearer_but_cheap], Side.BUY, D("2"))
    # a: (100 + 102) / 2 = 101 -> 101.606; b: (50.15 + 150.6) / 2 = 100.375 -> 100.475375
    assert [(p.exchange, p.price, p.price_after_fees) for p in deep] == [
        ("b", D("100.375"), D("100.475375")),
        ("a", D("101"), D("101.606")),
    ]
    thin = VenueBook("c", levels(), levels(("90", "0.1")), D("0"))
    ranked = venue_prices([thin, dearer_but_cheap], Side.BUY, D("2"))
    assert [p.exchange for p in ranked] == ["b", "c"]  # cannot fill it all: ranked last


def test_arbitrage_only_when_it_pays_after_both_fees() -> None:
    a = VenueBook(
        "a", levels(("99", "3")), levels(("100", "1"), ("100.5", "2")), D("0.001"), D("0.01")
    )
    b = VenueBook(
        "b", levels(("101", "1.5"), ("100.2", "4")), levels(("102", "1")), D("0.001"), D("0.01")
    )
    (opportunity,) = arbitrage([a, b])
    # unit 1: 100 -> 100.1 cost vs 101 -> 100.899: +; units 1-1.5: 100.5 -> 100.6005 vs 100.899: +;
    # next: 100.5 -> 100.6005 vs 100.2 -> 100.0998: stop. Quantity 1.5.
    assert (opportunity.buy_exchange, opportunity.sell_exchange, opportunity.quantity) == (
        "a",
        "b",
        D("1.5"),
    )
    assert opportunity.gross_profit == D("151.5") - D("150.25")
    assert opportunity.net_profit == D("151.5") * D("0.999") - D("150.25") * D("1.001")
    b_tight = VenueBook("b", levels(("100.15", "5")), levels(("102", "1")), D("0.001"))
    assert arbitrage([a, b_tight]) == []


def ticker(
    exchange: str,
    bid: str,
    ask: str,
    last: str,
    volume: str,
    bid_size: str = "1",
    ask_size: str = "1",
) -> Ticker:
    return Ticker(
        exchange,
        Symbol("BTC", "USDT"),
        "BTCUSDT",
        D(bid),
        D(bid_size),
        D(ask),
        D(ask_size),
        D(last),
        None,
        None,
        None,
        D(volume),
        None,
        None,
        False,
        None,
        NOW,
    )


def test_consolidated_view() -> None:
    view = consolidate(
        [
            ticker("a", "100", "101", "100.5", "10"),
            ticker("b", "100.2", "100.9", "100.8", "30", bid_size="2"),
            ticker("c", "99", "100.8", "100", "0"),
        ]
    )
    assert (view.best_bid.exchange, view.best_bid.price, view.best_bid.size) == (
        "b",
        D("100.2"),
        D("2"),
    )  # type: ignore[union-attr]
    assert (view.best_ask.exchange, view.best_ask.price) == ("c", D("100.8"))  # type: ignore[union-attr]
    assert (view.mid, view.spread, view.spread_bps) == (D("100.5"), D("0.6"), D("59.70"))
    assert view.volume_weighted_last == D("100.725")  # (100.5*10 + 100.8*30) / 40
    assert view.total_volume == D("40")


def test_portfolio_direct_bridged_cross_venue_and_unpriced() -> None:
    prices = [
        MarketPrice("binance", Symbol("BTC", "USDT"), D("43000")),
        MarketPrice("binance", Symbol("ETH", "BTC"), D("0.05")),
        MarketPrice("coinbase", Symbol("BTC", "USD"), D("43100")),
    ]
    valuation = value_portfolio(
        {
            "binance": [
                Balance("BTC", D("1"), D("0.5")),
                Balance("ETH", D("2"), D(0)),
                Balance("USDT", D("100"), D(0)),
                Balance("XYZ", D("5"), D(0)),
            ],
            "coinbase": [Balance("BTC", D("0.5"), D(0)), Balance("USD", D("10"), D(0))],
        },
        prices,
        "USDT",
    )
    values = {(a.exchange, a.asset): (a.value, a.price_path) for a in valuation.assets}
    assert values[("binance", "BTC")] == (D("64500"), "BTC-USDT@binance")
    assert values[("binance", "ETH")] == (D("4300"), "ETH-BTC@binance*BTC-USDT@binance")
    assert values[("binance", "USDT")] == (D("100"), "USDT")
    assert values[("coinbase", "BTC")] == (D("21500"), "BTC-USDT@binance")
    # USD has no USDT market anywhere: bridged through BTC (coinbase's own market first).
    assert values[("coinbase", "USD")] == (D("9.97679814"), "1/BTC-USD@coinbase*BTC-USDT@binance")
    (unpriced,) = valuation.unpriced
    assert (unpriced.exchange, unpriced.asset, unpriced.quantity) == ("binance", "XYZ", D("5"))
    assert "no market prices XYZ in USDT" in unpriced.reason
    assert valuation.total == D("90409.97679814")
    assert valuation.by_venue() == {"binance": D("68900"), "coinbase": D("21509.97679814")}
