"""The journal stores on real engines (a SQLite file, a PostgreSQL server): durability,
conflicts, states, codec, retention."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
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
from titan_grpc.errors import StoreUnavailable
from titan_grpc.stores import JournalClosed, JournalStore
from titan_grpc.stores import sqlite as sqlite_store
from titan_grpc.stores.postgres import PostgresDatabase, PostgresJournal
from titan_grpc.stores.sqlite import SqliteJournal
from titan_grpc.trading.journal import JournalState

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


def order(
    cid: str = "c-1", status: OrderStatus = OrderStatus.PARTIALLY_FILLED, order_id: str = "o1"
) -> Order:
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
        order_id,
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


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


Factory = Callable[..., JournalStore]


@pytest.fixture(params=["sqlite", "postgres"])
def make_journal(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """Builds journals on one store (the same file or database each time)."""
    if request.param == "sqlite":
        path = str(tmp_path / "deep" / "journal.sqlite3")
        return lambda clock=None: SqliteJournal(path, clock)
    url = request.getfixturevalue("journal_url")
    return lambda clock=None: PostgresJournal(PostgresDatabase(url), clock)


@pytest.fixture
async def journal(make_journal: Factory) -> AsyncIterator[JournalStore]:
    opened = make_journal()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_intent_is_durable_and_survives_reopening(make_journal: Factory) -> None:
    journal = make_journal()
    await journal.open()
    assert await journal.record_intent("binance", request()) is None
    await journal.close()  # a crash right after the intent was committed

    reopened = make_journal()
    await reopened.open()
    entry = await reopened.get("binance", "c-1")
    assert entry is not None
    assert entry.state is JournalState.INTENT and entry.request == request()
    assert [e.client_order_id for e in await reopened.needing_reconciliation()] == ["c-1"]
    await reopened.close()


async def test_second_intent_with_the_same_id_returns_the_first(journal: JournalStore) -> None:
    assert await journal.record_intent("binance", request()) is None
    existing = await journal.record_intent("binance", request(price="99"))
    assert existing is not None and existing.request.price == D("100.50")
    assert await journal.record_intent("kucoin", request()) is None  # ids are per venue


async def test_outcomes_round_trip_exactly(journal: JournalStore) -> None:
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
    journal = SqliteJournal(":memory:")
    await journal.open()
    await journal.record_intent("binance", request())
    pending = asyncio.ensure_future(journal.count_by_state())
    await asyncio.sleep(0)  # the query is handed to a worker thread
    pending.cancel()  # cancelling the task does not stop the thread ...
    await journal.close()  # ... so close must wait for it rather than pull the rug
    with pytest.raises(JournalClosed):
        await journal.get("binance", "c-1")


async def test_retention_prunes_only_settled_orders_past_the_retention(
    make_journal: Factory,
) -> None:
    clock = Clock()
    journal = make_journal(clock)
    await journal.open()
    try:
        old = {
            "filled": OrderStatus.FILLED,
            "canceled": OrderStatus.CANCELED,
            "expired": OrderStatus.EXPIRED,
            "open": OrderStatus.NEW,
            "partial": OrderStatus.PARTIALLY_FILLED,
        }
        for cid, status in old.items():
            await journal.record_intent("binance", request(cid))
            await journal.record_order("binance", cid, order(cid, status, order_id=cid))
        for cid, state in (
            ("refused", JournalState.REJECTED),
            ("limbo", JournalState.AMBIGUOUS),
            ("unsent", JournalState.UNSENT),
        ):
            await journal.record_intent("binance", request(cid))
            await journal.record_failure("binance", cid, state, "Kind", "why")
        await journal.record_intent("binance", request("in-flight"))
        clock.now = T0 + timedelta(days=40)
        await journal.record_intent("binance", request("new-refused"))
        await journal.record_failure("binance", "new-refused", JournalState.REJECTED, "K", "m")
        await journal.record_intent("binance", request("new-filled"))
        await journal.record_order("binance", "new-filled", order("new-filled", OrderStatus.FILLED))

        assert await journal.prune(clock.now - timedelta(days=30)) == 4
        kept = {e.client_order_id for e in await journal.list_entries(limit=100)}
        # Open orders, unknown outcomes, unsent intents and anything recent stay.
        assert kept == {
            "open",
            "partial",
            "limbo",
            "unsent",
            "in-flight",
            "new-refused",
            "new-filled",
        }
        assert await journal.prune(clock.now - timedelta(days=30)) == 0
        # A pruned id is free again; what reconciliation needs was never touched.
        pending = {e.client_order_id for e in await journal.needing_reconciliation()}
        assert pending == {"open", "partial", "limbo", "in-flight"}
    finally:
        await journal.close()


async def test_sqlite_writers_in_several_processes_never_fail(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sqlite3")
    journals = [SqliteJournal(path) for _ in range(4)]  # one connection each, as processes
    for journal in journals:
        await journal.open()
    try:

        async def write(journal: JournalStore, n: int) -> None:
            for i in range(40):
                cid = f"w{n}-{i}"
                await journal.record_intent("binance", request(cid))
                await journal.record_order("binance", cid, order(cid, order_id=cid))

        await asyncio.gather(*(write(journal, n) for n, journal in enumerate(journals)))
        counts = await journals[0].count_by_state()
        assert counts == {JournalState.ACCEPTED: 160}
    finally:
        for journal in journals:
            await journal.close()


async def test_sqlite_lock_held_too_long_is_unavailable_not_internal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_SECONDS", 0.01)
    monkeypatch.setattr(sqlite_store, "BUSY_ATTEMPTS", 2)
    path = str(tmp_path / "journal.sqlite3")
    journal = SqliteJournal(path)
    await journal.open()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock throughout
    try:
        with pytest.raises(StoreUnavailable, match="busy"):
            await journal.record_intent("binance", request())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await journal.record_intent("binance", request()) is None  # and then it works
    await journal.close()
