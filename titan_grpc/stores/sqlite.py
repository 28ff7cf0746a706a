"""The embedded engine: the journal and the claims in one SQLite file (stdlib).

WAL mode, ``synchronous=FULL`` (an intent must survive a crash), one connection per
process used from a worker thread so the event loop never blocks on disk. Every
process of ``serve --workers N`` opens the same file: writes take the write lock up
front (``BEGIN IMMEDIATE``), wait for it up to the busy timeout, and are retried a few
times with jittered back-off; only then does the caller see ``StoreUnavailable``
(UNAVAILABLE, which clients retry), never an internal error.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from titan_grpc.domain import Order, OrderRequest, Symbol
from titan_grpc.errors import StoreUnavailable
from titan_grpc.stores.base import (
    FINAL_STATUSES,
    JOURNAL_COLUMNS,
    OPEN_STATUSES,
    ClaimKey,
    JournalClosed,
    entry_from_row,
)
from titan_grpc.trading.journal import (
    JournalEntry,
    JournalState,
    encode_order,
    encode_request,
)

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 2.0
BUSY_ATTEMPTS = 6

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    exchange TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL,
    order_id TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '',
    order_json TEXT NOT NULL DEFAULT '',
    error_kind TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (exchange, client_order_id)
);
CREATE INDEX IF NOT EXISTS orders_by_state ON orders (state);
CREATE INDEX IF NOT EXISTS orders_by_time ON orders (created_at);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    exchange TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_order ON events (exchange, client_order_id);
CREATE TABLE IF NOT EXISTS claims (
    exchange TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (exchange, client_order_id)
);
"""


def _is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


class SqliteDatabase:
    """One SQLite connection shared by the journal and the claims of a process."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._users = 0

    async def open(self) -> None:
        self._users += 1
        if self._users == 1:
            await asyncio.to_thread(self._open)

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path,
            check_same_thread=False,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_SECONDS,  # sqlite3's busy handler: wait for the lock
        )
        try:
            for attempt in range(BUSY_ATTEMPTS):
                try:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.execute("PRAGMA synchronous=FULL")
                    connection.executescript(_SCHEMA)
                    break
                except sqlite3.OperationalError as error:
                    if not _is_busy(error) or attempt == BUSY_ATTEMPTS - 1:
                        raise
                    time.sleep(0.05 * (attempt + 1))
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    async def close(self) -> None:
        self._users -= 1
        if self._users > 0:
            return

        def locked_close() -> None:
            # Under the lock: a query still running in a worker thread (its task may have
            # been cancelled, the thread was not) finishes before the connection goes.
            with self._lock:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

        await asyncio.to_thread(locked_close)

    async def run(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        write: bool = False,
        durable: bool = True,
    ) -> T:
        """Run ``work`` in a worker thread; writes in one immediate transaction.

        ``durable=False`` (claims) skips the fsync of the commit: it still survives a
        process crash, and a power loss only forgets leases that would have run out.
        """

        def locked() -> T:
            with self._lock:
                db = self._connection
                if db is None:
                    raise JournalClosed("the order journal is closed")
                if not write:
                    return work(db)
                if not durable:
                    db.execute("PRAGMA synchronous=NORMAL")
                try:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(db)
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")  # durable before we return (unless asked not)
                finally:
                    if not durable:
                        db.execute("PRAGMA synchronous=FULL")
                return result

        for attempt in range(BUSY_ATTEMPTS):
            try:
                return await asyncio.to_thread(locked)
            except sqlite3.OperationalError as error:
                if not _is_busy(error):
                    raise
                # Another process held the write lock past the busy timeout: back off
                # with jitter (outside our own lock) and try again.
                await asyncio.sleep(random.uniform(0.01, 0.05) * 2**attempt)
        raise StoreUnavailable(
            "the order journal is busy (SQLite write lock contention); retry shortly"
        )


class SqliteJournal:
    """The order journal on SQLite (the default; ``TITAN_JOURNAL_PATH``)."""

    def __init__(
        self, database: SqliteDatabase | str, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.db = SqliteDatabase(database) if isinstance(database, str) else database
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def path(self) -> str:
        return self.db.path

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    # ---- writes ------------------------------------------------------------------

    async def record_intent(self, exchange: str, request: OrderRequest) -> JournalEntry | None:
        now = self._now()

        def work(db: sqlite3.Connection) -> JournalEntry | None:
            cursor = db.execute(
                "INSERT INTO orders (exchange, client_order_id, symbol, request, state,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (exchange, client_order_id) DO NOTHING",
                (
                    exchange,
                    request.client_order_id,
                    request.symbol.canonical,
                    json.dumps(encode_request(request)),
                    JournalState.INTENT.value,
                    now,
                    now,
                ),
            )
            if cursor.rowcount == 1:
                _event(db, exchange, request.client_order_id, JournalState.INTENT, "", now)
                return None
            return _get(db, exchange, request.client_order_id)

        return await self.db.run(work, write=True)

    async def record_order(self, exchange: str, client_order_id: str, order: Order) -> None:
        now = self._now()

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE orders SET state = ?, order_id = ?, status = ?, order_json = ?,"
                " error_kind = '', error_message = '', updated_at = ?"
                " WHERE exchange = ? AND client_order_id = ?",
                (
                    JournalState.ACCEPTED.value,
                    order.order_id,
                    order.status.value,
                    json.dumps(encode_order(order)),
                    now,
                    exchange,
                    client_order_id,
                ),
            )
            _event(db, exchange, client_order_id, JournalState.ACCEPTED, order.status.value, now)

        await self.db.run(work, write=True)

    async def record_failure(
        self, exchange: str, client_order_id: str, state: JournalState, kind: str, message: str
    ) -> None:
        now = self._now()

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE orders SET state = ?, error_kind = ?, error_message = ?, updated_at = ?"
                " WHERE exchange = ? AND client_order_id = ?",
                (state.value, kind, message, now, exchange, client_order_id),
            )
            _event(db, exchange, client_order_id, state, "", now, f"{kind}: {message}")

        await self.db.run(work, write=True)

    async def mark_resending(self, exchange: str, client_order_id: str) -> None:
        now = self._now()

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE orders SET state = ?, attempts = attempts + 1, updated_at = ?"
                " WHERE exchange = ? AND client_order_id = ?",
                (JournalState.INTENT.value, now, exchange, client_order_id),
            )
            _event(db, exchange, client_order_id, JournalState.INTENT, "", now, "resend")

        await self.db.run(work, write=True)

    async def prune(self, settled_before: datetime) -> int:
        cutoff = settled_before.astimezone(UTC).isoformat(timespec="microseconds")
        final = tuple(status.value for status in FINAL_STATUSES)
        settled = (
            f"updated_at < ? AND (state = ? OR (state = ? AND status IN"
            f" ({', '.join('?' for _ in final)})))"
        )
        args = (cutoff, JournalState.REJECTED.value, JournalState.ACCEPTED.value, *final)

        def work(db: sqlite3.Connection) -> int:
            db.execute(
                "DELETE FROM events WHERE (exchange, client_order_id) IN"
                f" (SELECT exchange, client_order_id FROM orders WHERE {settled})",
                args,
            )
            return db.execute(f"DELETE FROM orders WHERE {settled}", args).rowcount

        return await self.db.run(work, write=True)

    # ---- reads -------------------------------------------------------------------

    async def get(self, exchange: str, client_order_id: str) -> JournalEntry | None:
        return await self.db.run(lambda db: _get(db, exchange, client_order_id))

    async def list_entries(
        self,
        *,
        exchange: str | None = None,
        symbol: Symbol | None = None,
        states: tuple[JournalState, ...] = (),
        limit: int = 100,
    ) -> list[JournalEntry]:
        clauses, args = [], []
        if exchange:
            clauses.append("exchange = ?")
            args.append(exchange)
        if symbol is not None:
            clauses.append("symbol = ?")
            args.append(symbol.canonical)
        if states:
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            args.extend(state.value for state in states)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = (
            f"SELECT {_COLUMNS} FROM orders {where} ORDER BY created_at DESC, rowid DESC LIMIT ?"
        )

        def work(db: sqlite3.Connection) -> list[JournalEntry]:
            return [_entry(row) for row in db.execute(query, (*args, limit)).fetchall()]

        return await self.db.run(work)

    async def needing_reconciliation(self) -> list[JournalEntry]:
        def work(db: sqlite3.Connection) -> list[JournalEntry]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE state IN (?, ?)"
                " OR (state = ? AND status IN (?, ?)) ORDER BY created_at",
                (
                    JournalState.INTENT.value,
                    JournalState.AMBIGUOUS.value,
                    JournalState.ACCEPTED.value,
                    *(status.value for status in OPEN_STATUSES),
                ),
            ).fetchall()
            return [_entry(row) for row in rows]

        return await self.db.run(work)

    async def count_by_state(self) -> dict[JournalState, int]:
        def work(db: sqlite3.Connection) -> dict[JournalState, int]:
            rows = db.execute("SELECT state, COUNT(*) FROM orders GROUP BY state").fetchall()
            return {JournalState(state): count for state, count in rows}

        return await self.db.run(work)

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="microseconds")


class SqliteClaims:
    """Claims in the journal's own file: atomic across the processes of one host.

    Leases are wall-clock deadlines; every process sharing a file shares the host's clock.
    """

    def __init__(self, database: SqliteDatabase, clock: Callable[[], float] = time.time) -> None:
        self.db = database
        self._clock = clock

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def acquire(self, key: ClaimKey, owner: str, lease_seconds: float) -> bool:
        now = self._clock()

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT INTO claims (exchange, client_order_id, owner, expires_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (exchange, client_order_id) DO UPDATE"
                " SET owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE claims.expires_at <= ? OR claims.owner = excluded.owner",
                (*key, owner, now + lease_seconds, now),
            )
            return cursor.rowcount == 1

        return await self.db.run(work, write=True, durable=False)

    async def renew(self, key: ClaimKey, owner: str, lease_seconds: float) -> bool:
        deadline = self._clock() + lease_seconds

        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE claims SET expires_at = ?"
                " WHERE exchange = ? AND client_order_id = ? AND owner = ?",
                (deadline, *key, owner),
            )
            return cursor.rowcount == 1

        return await self.db.run(work, write=True, durable=False)

    async def release(self, key: ClaimKey, owner: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "DELETE FROM claims WHERE exchange = ? AND client_order_id = ? AND owner = ?",
                (*key, owner),
            )

        await self.db.run(work, write=True, durable=False)


def _event(
    db: sqlite3.Connection,
    exchange: str,
    client_order_id: str,
    state: JournalState,
    status: str,
    at: str,
    detail: str = "",
) -> None:
    db.execute(
        "INSERT INTO events (exchange, client_order_id, state, status, detail, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (exchange, client_order_id, state.value, status, detail, at),
    )


def _get(db: sqlite3.Connection, exchange: str, client_order_id: str) -> JournalEntry | None:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM orders WHERE exchange = ? AND client_order_id = ?",
        (exchange, client_order_id),
    ).fetchone()
    return _entry(row) if row else None


_COLUMNS = JOURNAL_COLUMNS


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    return entry_from_row(row, datetime.fromisoformat)
