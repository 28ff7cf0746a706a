"""Matching-engine rules with hand-built books and hand-computed outcomes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from titan_grpc.domain import (
    Liquidity,
    Market,
    OrderRequest,
    OrderStatus,
    OrderType,
    PriceLevel,
    Side,
    Symbol,
    TimeInForce,
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
from titan_grpc.exchanges.simulated.engine import MatchingEngine

BTC_USDT = Symbol("BTC", "USDT")
MARKET = Market(
    exchange="paper",
    symbol=BTC_USDT,
    venue_symbol="BTCUSDT",
    tick_size=D("0.01"),
    step_size=D("0.001"),
    min_quantity=D("0.001"),
    max_quantity=D("1000"),
    min_notional=D("5"),
    maker_fee_rate=D("0.0005"),
    taker_fee_rate=D("0.001"),
)
BIDS = [PriceLevel(D("99"), D("1")), PriceLevel(D("98"), D("2"))]
ASKS = [PriceLevel(D("100"), D("1")), PriceLevel(D("101"), D("2"))]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def engine() -> MatchingEngine:
    paper = MatchingEngine(
        "paper", {BTC_USDT: MARKET}, {"USDT": D("1000"), "BTC": D("5")}, lambda: NOW
    )
    paper.set_book(BTC_USDT, BIDS, ASKS, D("99.5"))
    return paper


def order(
    side: Side,
    kind: OrderType,
    quantity: str,
    price: str | None = None,
    tif: TimeInForce | None = None,
    client_id: str = "c1",
    post_only: bool = False,
) -> OrderRequest:
    if tif is None:
        tif = TimeInForce.GTC if kind is OrderType.LIMIT else TimeInForce.IOC
    return OrderRequest(
        BTC_USDT, side, kind, D(quantity), D(price) if price else None, tif, client_id, post_only
    )


def balances(engine: MatchingEngine) -> dict[str, tuple[D, D]]:
    return {b.asset: (b.free, b.locked) for b in engine.balances()}


def test_market_buy_walks_the_book_and_pays_taker_fees(engine: MatchingEngine) -> None:
    placed = engine.place(order(Side.BUY, OrderType.MARKET, "2"))
    assert placed.status is OrderStatus.FILLED
    assert [(f.price, f.quantity, f.fee, f.liquidity) for f in placed.fills] == [
        (D("100"), D("1"), D("0.1"), Liquidity.TAKER),
        (D("101"), D("1"), D("0.101"), Liquidity.TAKER),
    ]
    assert placed.filled_quote_quantity == D("201")
    assert placed.average_fill_price == D("100.5")
    assert placed.fee == D("0.201")
    assert balances(engine) == {"USDT": (D("798.799"), D(0)), "BTC": (D("7"), D(0))}
    bids, asks, _ = engine.book(BTC_USDT, 5)
    assert asks == [PriceLevel(D("101"), D("1"))]  # consumed liquidity is gone
    assert bids == BIDS


def test_market_sell_receives_notional_minus_fee(engine: MatchingEngine) -> None:
    placed = engine.place(order(Side.SELL, OrderType.MARKET, "1.5"))
    assert [(f.price, f.quantity) for f in placed.fills] == [(D("99"), D("1")), (D("98"), D("0.5"))]
    # 99 + 49 = 148 notional; fees 0.099 + 0.049
    assert balances(engine) == {"USDT": (D("1147.852"), D(0)), "BTC": (D("3.5"), D(0))}


def test_market_order_larger_than_the_book_expires_the_rest(engine: MatchingEngine) -> None:
    placed = engine.place(order(Side.SELL, OrderType.MARKET, "4"))
    assert placed.status is OrderStatus.EXPIRED
    assert placed.filled_quantity == D("3")
    assert "book exhausted" in placed.status_reason


def test_crossing_limit_takes_within_its_price_then_rests(engine: MatchingEngine) -> None:
    placed = engine.place(order(Side.BUY, OrderType.LIMIT, "2", "100"))
    assert placed.status is OrderStatus.PARTIALLY_FILLED
    assert placed.filled_quantity == D("1")
    # 1 filled at 100 (+0.1 fee); 1 rests at 100: locked 100 + maker fee 0.05
    assert balances(engine) == {"USDT": (D("799.85"), D("100.05")), "BTC": (D("6"), D(0))}
    assert [o.order_id for o in engine.open_orders(BTC_USDT)] == [placed.order_id]


def test_resting_order_fills_when_the_market_moves_through_it(engine: MatchingEngine) -> None:
    placed = engine.place(order(Side.BUY, OrderType.LIMIT, "1", "99.5"))
    assert placed.status is OrderStatus.NEW
    assert balances(engine)["USDT"] == (D("900.45025"), D("99.54975"))
    # Market drops: best ask 99.4 is through the 99.5 bid.
    engine.set_book(
        BTC_USDT, [PriceLevel(D("99.3"), D("1"))], [PriceLevel(D("99.4"), D("1"))], D("99.35")
    )
    filled = engine.order(order_id=placed.order_id)
    assert filled.status is OrderStatus.FILLED
    assert [(f.price, f.liquidity, f.fee) for f in filled.fills] == [
        (D("99.5"), Liquidity.MAKER, D("0.04975"))
    ]
    assert balances(engine) == {"USDT": (D("900.45025"), D(0)), "BTC": (D("6"), D(0))}


def test_resting_sell_locks_base_and_cancel_releases_it(engine: MatchingEngine) -> None:
    placed = engine.place(order(Side.SELL, OrderType.LIMIT, "2", "105"))
    assert balances(engine)["BTC"] == (D("3"), D("2"))
    cancelled = engine.cancel(client_order_id="c1")
    assert cancelled.status is OrderStatus.CANCELED
    assert balances(engine)["BTC"] == (D("5"), D(0))
    with pytest.raises(OrderNotCancelable):
        engine.cancel(order_id=placed.order_id)


def test_ioc_limit_expires_its_unfilled_rest(engine: MatchingEngine) -> None:
    placed = engine.place(order(Side.BUY, OrderType.LIMIT, "2", "100", TimeInForce.IOC))
    assert placed.status is OrderStatus.EXPIRED
    assert placed.filled_quantity == D("1")
    assert balances(engine)["USDT"] == (D("899.9"), D(0))


def test_fok_fills_all_or_nothing(engine: MatchingEngine) -> None:
    killed = engine.place(order(Side.BUY, OrderType.LIMIT, "2", "100", TimeInForce.FOK))
    assert killed.status is OrderStatus.EXPIRED and killed.filled_quantity == 0
    assert balances(engine)["USDT"] == (D("1000"), D(0))
    filled = engine.place(order(Side.BUY, OrderType.LIMIT, "2", "101", TimeInForce.FOK, "c2"))
    assert filled.status is OrderStatus.FILLED and filled.filled_quantity == D("2")


def test_post_only_that_would_take_is_rejected(engine: MatchingEngine) -> None:
    with pytest.raises(OrderRejected):
        engine.place(order(Side.BUY, OrderType.LIMIT, "1", "100", post_only=True))
    resting = engine.place(order(Side.BUY, OrderType.LIMIT, "1", "99.99", post_only=True))
    assert resting.status is OrderStatus.NEW


def test_overspending_is_rejected_before_anything_moves(engine: MatchingEngine) -> None:
    with pytest.raises(InsufficientFunds, match="USDT"):
        engine.place(order(Side.BUY, OrderType.LIMIT, "10.5", "96"))  # 1008 + fee > 1000
    with pytest.raises(InsufficientFunds, match="BTC"):
        engine.place(order(Side.SELL, OrderType.LIMIT, "5.001", "120"))
    assert balances(engine) == {"USDT": (D("1000"), D(0)), "BTC": (D("5"), D(0))}
    assert engine.book(BTC_USDT, 5)[1] == ASKS


@pytest.mark.parametrize(
    ("request_", "field", "fragment"),
    [
        (order(Side.BUY, OrderType.LIMIT, "1", "99.999"), "price", "99.99 and 100"),
        (order(Side.BUY, OrderType.LIMIT, "1.0005", "99"), "quantity", "1 and 1.001"),
        (order(Side.BUY, OrderType.LIMIT, "0.01", "99"), "quantity", "smallest valid quantity"),
        (order(Side.BUY, OrderType.MARKET, "0.01"), "quantity", "NOTIONAL"),
        (order(Side.BUY, OrderType.MARKET, "1", tif=TimeInForce.GTC), "time_in_force", "IOC"),
    ],
)
def test_filter_violations_name_the_field_and_valid_values(
    engine: MatchingEngine, request_: OrderRequest, field: str, fragment: str
) -> None:
    with pytest.raises(InvalidOrder) as caught:
        engine.place(request_)
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_duplicate_client_ids_unknown_orders_and_symbols(engine: MatchingEngine) -> None:
    engine.place(order(Side.BUY, OrderType.LIMIT, "1", "90"))
    with pytest.raises(DuplicateOrder):
        engine.place(order(Side.BUY, OrderType.LIMIT, "1", "91"))
    with pytest.raises(OrderNotFound):
        engine.order(order_id="nope")
    with pytest.raises(OrderNotFound):
        engine.cancel(client_order_id="nope")
    with pytest.raises(UnknownSymbol):
        engine.book(Symbol("DOGE", "USDT"), 5)


def test_fills_and_ledger_record_every_balance_change(engine: MatchingEngine) -> None:
    placed = engine.place(order(Side.BUY, OrderType.MARKET, "1"))
    fills = engine.fills(None, "", 10)
    assert [f.order_id for f in fills] == [placed.order_id]
    entries = engine.ledger(None, 10)
    # newest first: fee, quote debit, base credit, then the two opening deposits
    assert [(e.asset, e.amount, e.balance_after) for e in entries[:3]] == [
        ("USDT", D("-0.1"), D("899.9")),
        ("USDT", D("-100"), D("900")),
        ("BTC", D("1"), D("6")),
    ]
    assert engine.ledger("BTC", 10)[-1].amount == D("5")


def test_a_quote_sized_buy_takes_whole_steps_within_the_quote(engine: MatchingEngine) -> None:
    request = OrderRequest(
        BTC_USDT,
        Side.BUY,
        OrderType.MARKET,
        D(0),
        None,
        TimeInForce.IOC,
        "q1",
        quote_quantity=D("150.5"),
    )
    placed = engine.place(request)
    # 1 BTC at 100 (100), then floor(50.5 / 101, 0.001) = 0.5 BTC at 101 (50.5).
    assert [(f.price, f.quantity) for f in placed.fills] == [
        (D("100"), D("1")),
        (D("101"), D("0.5")),
    ]
    assert (placed.quantity, placed.filled_quote_quantity) == (D("1.5"), D("150.5"))
    assert placed.status is OrderStatus.FILLED and placed.quote_quantity == D("150.5")


def test_a_stop_rests_untriggered_until_the_mid_crosses(engine: MatchingEngine) -> None:
    request = OrderRequest(
        BTC_USDT,
        Side.SELL,
        OrderType.STOP_LIMIT,
        D("1"),
        D("97"),
        TimeInForce.GTC,
        "s1",
        stop_price=D("98"),
    )
    placed = engine.place(request)
    assert placed.status is OrderStatus.NEW and not placed.fills
    engine.set_book(BTC_USDT, BIDS, ASKS, D("98.5"))  # moved, not through the stop
    assert engine.order(client_order_id="s1").status is OrderStatus.NEW
    engine.set_book(BTC_USDT, [PriceLevel(D("97.5"), D("3"))], ASKS, D("98"))
    triggered = engine.order(client_order_id="s1")
    assert triggered.status is OrderStatus.FILLED
    assert [(f.price, f.liquidity) for f in triggered.fills] == [(D("97.5"), Liquidity.TAKER)]


def test_a_stop_the_market_already_reached_is_rejected(engine: MatchingEngine) -> None:
    request = OrderRequest(
        BTC_USDT,
        Side.BUY,
        OrderType.STOP_MARKET,
        D("1"),
        None,
        TimeInForce.IOC,
        "s2",
        stop_price=D("99"),
    )
    with pytest.raises(OrderRejected, match="trigger immediately"):
        engine.place(request)


def test_a_stop_short_of_funds_when_triggered_ends_rejected(engine: MatchingEngine) -> None:
    request = OrderRequest(
        BTC_USDT,
        Side.BUY,
        OrderType.STOP_MARKET,
        D("20"),
        None,
        TimeInForce.IOC,
        "s3",
        stop_price=D("100"),
    )
    engine.place(request)  # nothing is held while it waits
    deep = [PriceLevel(D("100.5"), D("50"))]
    engine.set_book(BTC_USDT, BIDS, deep, D("100.2"))
    rejected = engine.order(client_order_id="s3")
    assert rejected.status is OrderStatus.REJECTED and "insufficient" in rejected.status_reason
