"""The journal on a real SQLite file: durability, conflicts, states, codec."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from titan_grpc.domain import (
    Fill,
    Liquidity,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Symbol,
    TimeInForce,
)
from titan_grpc.trading.journal import JournalClosed, JournalState, OrderJournal

BTC = Symbol("BTC", "USDT")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def request(cid: str = "c-1", price: str | None = "100.50") -> OrderRequest:
    return OrderRequest(
        BTC,
        Side.BUY,
        OrderType.LIMIT,
        D("0.12345678"),
        D(price) if price else None,
        TimeInForce.GTC,
        cid,
    )


def order(cid: str = "c-1", status: OrderStatus = OrderStatus.PARTIALLY_FILLED) -> Order:
    fill = Fill(
        "t1",
        "o1",
        cid,
        BTC,
        Side.BUY,
        D("100.5"),
        D("0.1"),
        D("0.01005"),
        "USDT",
        Liquidity.TAKER,
        T0,
    )
    return Order(
        "binance",
        BTC,
        "BTCUSDT",
        "o1",
        cid,
        Side.BUY,
        OrderType.LIMIT,
        TimeInForce.GTC,
        status,
        D("100.50"),
        D("0.12345678"),
        D("0.1"),
        D("10.05"),
        D("0.01005"),
        "USDT",
        T0,
        T0,
        False,
        (fill,),
        "",
    )


async def test_intent_is_durable_and_survives_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "deep" / "journal.sqlite3")
    journal = OrderJournal(path)
    await journal.open()
    assert await journal.record_intent("binance", request()) is None
    await journal.close()  # a crash right after the intent was committed

    reopened = OrderJournal(path)
    await reopened.open()
    entry = await reopened.get("binance", "c-1")
    assert entry is not None
    assert entry.state is JournalState.INTENT and entry.request == request()
    assert [e.client_order_id for e in await reopened.needing_reconciliation()] == ["c-1"]
    await reopened.close()


async def test_second_intent_with_the_same_id_returns_the_first() -> None:
    journal = OrderJournal(":memory:")
    await journal.open()
    assert await journal.record_intent("binance", request()) is None
    existing = await journal.record_intent("binance", request(price="99"))
    assert existing is not None and existing.request.price == D("100.50")
    assert await journal.record_intent("kucoin", request()) is None  # ids are per venue


async def test_outcomes_round_trip_exactly() -> None:
    journal = OrderJournal(":memory:")
    await journal.open()
    await journal.record_intent("binance", request())
    await journal.record_order("binance", "c-1", order())
    entry = await journal.get("binance", "c-1")
    assert entry is not None and entry.state is JournalState.ACCEPTED
    assert entry.order == order()
    await journal.record_intent("binance", request("c-2"))
    await journal.record_failure(
        "binance", "c-2", JournalState.AMBIGUOUS, "AmbiguousOutcome", "timed out"
    )
    await journal.record_intent("binance", request("c-3", price=None))
    await journal.record_failure(
        "binance", "c-3", JournalState.REJECTED, "InsufficientFunds", "no money"
    )
    pending = {e.client_order_id for e in await journal.needing_reconciliation()}
    assert pending == {"c-1", "c-2"}  # partially filled is still open; rejected is final
    assert await journal.count_by_state() == {
        JournalState.ACCEPTED: 1,
        JournalState.AMBIGUOUS: 1,
        JournalState.REJECTED: 1,
    }
    newest_first = await journal.list_entries(
        states=(JournalState.AMBIGUOUS, JournalState.REJECTED)
    )
    assert [e.client_order_id for e in newest_first] == ["c-3", "c-2"]
    assert newest_first[0].error_kind == "InsufficientFunds"
    await journal.mark_resending("binance", "c-2")
    resent = await journal.get("binance", "c-2")
    assert resent is not None and resent.state is JournalState.INTENT and resent.attempts == 2


async def test_close_waits_for_a_query_still_running_in_its_thread() -> None:
    journal = OrderJournal(":memory:")
    await journal.open()
    await journal.record_intent("binance", request())
    pending = asyncio.ensure_future(journal.count_by_state())
    await asyncio.sleep(0)  # the query is handed to a worker thread
    pending.cancel()  # cancelling the task does not stop the thread ...
    await journal.close()  # ... so close must wait for it rather than pull the rug
    with pytest.raises(JournalClosed):
        await journal.get("binance", "c-1")
