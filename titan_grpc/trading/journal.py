"""The order journal: every placement is written (and committed) before it is sent.

SQLite from the standard library, WAL mode, one connection used from a worker thread
so the event loop never blocks on disk. One row per (exchange, client order id) holds
the request, the journal state and the last known order; an events table keeps every
transition with its time.

    INTENT     written, being sent (or the process died while sending)
    ACCEPTED   the venue has the order (its own status is in ``order``)
    REJECTED   the venue refused it definitively; replays answer with the same error
    UNSENT     it never reached the venue (no connection, local rate limit): may be sent
    AMBIGUOUS  sent, outcome unknown: reconciled by client order id, never re-sent blindly
"""

from __future__ import annotations

import asyncio
import enum
import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

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

T = TypeVar("T")


class JournalClosed(RuntimeError):
    """The journal was used after close (only during shutdown)."""


class JournalState(enum.Enum):
    INTENT = "intent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNSENT = "unsent"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    exchange: str
    client_order_id: str
    request: OrderRequest
    state: JournalState
    order: Order | None
    error_kind: str
    error_message: str
    attempts: int
    created_at: datetime
    updated_at: datetime


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
"""


class OrderJournal:
    def __init__(self, path: str, clock: Callable[[], datetime] | None = None) -> None:
        self.path = path
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    # ---- life cycle --------------------------------------------------------------

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")  # an intent must survive a crash
        connection.executescript(_SCHEMA)
        self._connection = connection

    async def close(self) -> None:
        def locked_close() -> None:
            # Under the lock: a query still running in a worker thread (its task may have
            # been cancelled, the thread was not) finishes before the connection goes.
            with self._lock:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

        await asyncio.to_thread(locked_close)

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        def locked() -> T:
            with self._lock:
                if self._connection is None:
                    raise JournalClosed("the order journal is closed")
                if not write:
                    return work(self._connection)
                self._connection.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._connection)
                except BaseException:
                    self._connection.execute("ROLLBACK")
                    raise
                self._connection.execute("COMMIT")  # durable before we return
                return result

        return await asyncio.to_thread(locked)

    # ---- writes ------------------------------------------------------------------

    async def record_intent(self, exchange: str, request: OrderRequest) -> JournalEntry | None:
        """Insert the intent row and commit. Returns the existing entry if the id is taken."""
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
                self._event(db, exchange, request.client_order_id, JournalState.INTENT, "", now)
                return None
            return self._get(db, exchange, request.client_order_id)

        return await self._run(work, write=True)

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
            self._event(
                db, exchange, client_order_id, JournalState.ACCEPTED, order.status.value, now
            )

        await self._run(work, write=True)

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
            self._event(db, exchange, client_order_id, state, "", now, f"{kind}: {message}")

        await self._run(work, write=True)

    async def mark_resending(self, exchange: str, client_order_id: str) -> None:
        """Back to INTENT for another attempt (only after UNSENT or a settled AMBIGUOUS)."""
        now = self._now()

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE orders SET state = ?, attempts = attempts + 1, updated_at = ?"
                " WHERE exchange = ? AND client_order_id = ?",
                (JournalState.INTENT.value, now, exchange, client_order_id),
            )
            self._event(db, exchange, client_order_id, JournalState.INTENT, "", now, "resend")

        await self._run(work, write=True)

    def _event(
        self,
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

    # ---- reads -------------------------------------------------------------------

    async def get(self, exchange: str, client_order_id: str) -> JournalEntry | None:
        return await self._run(lambda db: self._get(db, exchange, client_order_id))

    def _get(
        self, db: sqlite3.Connection, exchange: str, client_order_id: str
    ) -> JournalEntry | None:
        row = db.execute(
            f"SELECT {_COLUMNS} FROM orders WHERE exchange = ? AND client_order_id = ?",
            (exchange, client_order_id),
        ).fetchone()
        return _entry(row) if row else None

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

        return await self._run(work)

    async def needing_reconciliation(self) -> list[JournalEntry]:
        """INTENT and AMBIGUOUS rows, and accepted orders the venue still had open."""
        open_statuses = (OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value)

        def work(db: sqlite3.Connection) -> list[JournalEntry]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM orders WHERE state IN (?, ?)"
                " OR (state = ? AND status IN (?, ?)) ORDER BY created_at",
                (
                    JournalState.INTENT.value,
                    JournalState.AMBIGUOUS.value,
                    JournalState.ACCEPTED.value,
                    *open_statuses,
                ),
            ).fetchall()
            return [_entry(row) for row in rows]

        return await self._run(work)

    async def count_by_state(self) -> dict[JournalState, int]:
        def work(db: sqlite3.Connection) -> dict[JournalState, int]:
            rows = db.execute("SELECT state, COUNT(*) FROM orders GROUP BY state").fetchall()
            return {JournalState(state): count for state, count in rows}

        return await self._run(work)

    def _now(self) -> str:
        return self._clock().isoformat(timespec="microseconds")


_COLUMNS = (
    "exchange, client_order_id, request, state, order_json, error_kind, error_message,"
    " attempts, created_at, updated_at"
)


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    (
        exchange,
        client_order_id,
        request,
        state,
        order_json,
        kind,
        message,
        attempts,
        created,
        updated,
    ) = row
    return JournalEntry(
        exchange=exchange,
        client_order_id=client_order_id,
        request=decode_request(json.loads(request)),
        state=JournalState(state),
        order=decode_order(json.loads(order_json)) if order_json else None,
        error_kind=kind,
        error_message=message,
        attempts=attempts,
        created_at=datetime.fromisoformat(created),
        updated_at=datetime.fromisoformat(updated),
    )


# ---- JSON codec (decimals as strings, times as ISO 8601) -------------------------------


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _undec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def encode_request(request: OrderRequest) -> dict[str, Any]:
    return {
        "symbol": request.symbol.canonical,
        "side": request.side.value,
        "type": request.type.value,
        "quantity": str(request.quantity),
        "price": _dec(request.price),
        "time_in_force": request.time_in_force.value,
        "client_order_id": request.client_order_id,
        "post_only": request.post_only,
        "quote_quantity": _dec(request.quote_quantity),
        "stop_price": _dec(request.stop_price),
    }


def decode_request(data: dict[str, Any]) -> OrderRequest:
    base, quote = data["symbol"].split("-")
    return OrderRequest(
        symbol=Symbol(base, quote),
        side=Side(data["side"]),
        type=OrderType(data["type"]),
        quantity=Decimal(data["quantity"]),
        price=_undec(data["price"]),
        time_in_force=TimeInForce(data["time_in_force"]),
        client_order_id=data["client_order_id"],
        post_only=bool(data["post_only"]),
        # Rows written before quote-sized and stop orders lack these keys.
        quote_quantity=_undec(data.get("quote_quantity")),
        stop_price=_undec(data.get("stop_price")),
    )


def _encode_fill(fill: Fill) -> dict[str, Any]:
    return {
        "trade_id": fill.trade_id,
        "order_id": fill.order_id,
        "client_order_id": fill.client_order_id,
        "symbol": fill.symbol.canonical,
        "side": fill.side.value,
        "price": str(fill.price),
        "quantity": str(fill.quantity),
        "fee": str(fill.fee),
        "fee_asset": fill.fee_asset,
        "liquidity": fill.liquidity.value,
        "time": fill.time.isoformat(),
    }


def _decode_fill(data: dict[str, Any]) -> Fill:
    base, quote = data["symbol"].split("-")
    return Fill(
        trade_id=data["trade_id"],
        order_id=data["order_id"],
        client_order_id=data["client_order_id"],
        symbol=Symbol(base, quote),
        side=Side(data["side"]),
        price=Decimal(data["price"]),
        quantity=Decimal(data["quantity"]),
        fee=Decimal(data["fee"]),
        fee_asset=data["fee_asset"],
        liquidity=Liquidity(data["liquidity"]),
        time=datetime.fromisoformat(data["time"]),
    )


def encode_order(order: Order) -> dict[str, Any]:
    return {
        "exchange": order.exchange,
        "symbol": order.symbol.canonical,
        "venue_symbol": order.venue_symbol,
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "side": order.side.value,
        "type": order.type.value,
        "time_in_force": order.time_in_force.value,
        "status": order.status.value,
        "price": _dec(order.price),
        "quantity": str(order.quantity),
        "filled_quantity": str(order.filled_quantity),
        "filled_quote_quantity": str(order.filled_quote_quantity),
        "fee": _dec(order.fee),
        "fee_asset": order.fee_asset,
        "created_time": order.created_time.isoformat(),
        "updated_time": order.updated_time.isoformat(),
        "simulated": order.simulated,
        "fills": [_encode_fill(fill) for fill in order.fills],
        "status_reason": order.status_reason,
        "stop_price": _dec(order.stop_price),
        "quote_quantity": _dec(order.quote_quantity),
    }


def decode_order(data: dict[str, Any]) -> Order:
    base, quote = data["symbol"].split("-")
    return Order(
        exchange=data["exchange"],
        symbol=Symbol(base, quote),
        venue_symbol=data["venue_symbol"],
        order_id=data["order_id"],
        client_order_id=data["client_order_id"],
        side=Side(data["side"]),
        type=OrderType(data["type"]),
        time_in_force=TimeInForce(data["time_in_force"]),
        status=OrderStatus(data["status"]),
        price=_undec(data["price"]),
        quantity=Decimal(data["quantity"]),
        filled_quantity=Decimal(data["filled_quantity"]),
        filled_quote_quantity=Decimal(data["filled_quote_quantity"]),
        fee=_undec(data["fee"]),
        fee_asset=data["fee_asset"],
        created_time=datetime.fromisoformat(data["created_time"]),
        updated_time=datetime.fromisoformat(data["updated_time"]),
        simulated=bool(data["simulated"]),
        fills=tuple(_decode_fill(fill) for fill in data["fills"]),
        status_reason=data["status_reason"],
        stop_price=_undec(data.get("stop_price")),
        quote_quantity=_undec(data.get("quote_quantity")),
    )
