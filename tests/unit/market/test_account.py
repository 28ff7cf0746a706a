"""The account tracker (pure): a fill seen twice goes out once, a stale state not at
all, a catch-up rebuilds the states between fills; and the markets a valuation uses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

from titan_grpc.domain import (
    Balance,
    BalanceUpdate,
    Fill,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
    Symbol,
    TimeInForce,
)
from titan_grpc.market.account import AccountTracker, after_fill
from titan_grpc.market.portfolio import MarketPrice, value_portfolio
from titan_grpc.service.account_streams import markets_used

BTC = Symbol("BTC", "USDT")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NEW = Order(
    "binance", BTC, "BTCUSDT", "7", "c-7", Side.BUY, OrderType.LIMIT, TimeInForce.GTC,
    OrderStatus.NEW, D("100"), D("1"), D(0), D(0), None, "", T0, T0, False,
)  # fmt: skip


def fill(trade: str, quantity: str) -> Fill:
    return Fill(trade, "7", "c-7", BTC, Side.BUY, D("100"), D(quantity), D("0.1"), "USDT",
                Liquidity.MAKER, T0)  # fmt: skip


def test_a_fill_reported_twice_goes_out_once_and_fees_are_summed() -> None:
    tracker = AccountTracker("binance")
    assert tracker.apply(OrderUpdate(NEW, None, T0)) is not None
    first = after_fill(NEW, fill("t1", "0.4"))
    sent = tracker.apply(OrderUpdate(replace(first, fee=None, fills=()), fill("t1", "0.4"), T0))
    assert sent is not None and sent.fill is not None and sent.order.fee == D("0.1")
    # The same fill again (the live feed, then the catch-up): nothing new.
    assert tracker.apply(OrderUpdate(first, fill("t1", "0.4"), T0)) is None
    # An older state after a newer one: dropped.
    assert tracker.apply(OrderUpdate(NEW, None, T0)) is None
    second = after_fill(first, fill("t2", "0.6"))
    done = tracker.apply(OrderUpdate(replace(second, fee=None), fill("t2", "0.6"), T0))
    assert done is not None and done.order.status is OrderStatus.FILLED
    assert done.order.fee == D("0.2") and [f.trade_id for f in done.order.fills] == ["t1", "t2"]
    assert tracker.open_orders() == []


def test_balances_report_only_what_moved() -> None:
    tracker = AccountTracker("binance")
    full = BalanceUpdate("binance", (Balance("USDT", D(5), D(0)), Balance("BTC", D(1), D(0))), T0)
    assert tracker.apply_balances(full, complete=True) == full
    again = BalanceUpdate("binance", (Balance("USDT", D(5), D(0)), Balance("BTC", D(2), D(0))), T0)
    moved = tracker.apply_balances(again)
    assert moved is not None and moved.balances == (Balance("BTC", D(2), D(0)),)
    gone = tracker.apply_balances(BalanceUpdate("binance", (), T0), complete=True)
    assert gone is not None and {b.asset for b in gone.balances} == {"USDT", "BTC"}


def test_markets_used_follow_direct_and_bridged_prices() -> None:
    balances = {"kucoin": [Balance("BTC", D(1), D(0)), Balance("ETH", D(2), D(0))]}
    prices = [
        MarketPrice("kucoin", Symbol("BTC", "USDT"), D("40000")),
        MarketPrice("kucoin", Symbol("ETH", "BTC"), D("0.05")),
        MarketPrice("kucoin", Symbol("SOL", "USDT"), D("100")),
    ]
    used = markets_used(value_portfolio(balances, prices, "USDT"))
    assert used == {("kucoin", Symbol("BTC", "USDT")), ("kucoin", Symbol("ETH", "BTC"))}
