"""The journal and the claims on PostgreSQL (``TITAN_JOURNAL_URL=postgresql://...``).

Driver: psycopg 3 (with its connection pool). It is fully typed, and being libpq-based it
accepts every libpq connection-string option operators already use (``sslmode``,
``sslrootcert``, several hosts with ``target_session_attrs=read-write`` for fail-over,
``PG*`` variables, ``.pgpass``), so ``TITAN_JOURNAL_URL`` is an ordinary PostgreSQL URL.

Tables are prefixed ``titan_`` so the journal can live in a shared database. Claim leases
are measured on the database server's clock, so hosts' clocks need not agree.
Engine errors surface as ``StoreUnavailable`` (UNAVAILABLE to the caller), never with
the URL (it may carry a password).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

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
Connection = psycopg.AsyncConnection[tuple[Any, ...]]

POOL_SIZE = 8
CONNECT_TIMEOUT_SECONDS = 15.0
_SCHEMA_LOCK = 0x7469_7461_6E  # pg_advisory_xact_lock key: one process creates the schema

_SCHEMA = """
CREATE TABLE IF NOT EXISTS titan_orders (
    seq BIGSERIAL,
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
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (exchange, client_order_id)
);
CREATE INDEX IF NOT EXISTS titan_orders_by_state ON titan_orders (state);
CREATE INDEX IF NOT EXISTS titan_orders_by_time ON titan_orders (created_at);
CREATE TABLE IF NOT EXISTS titan_order_events (
    id BIGSERIAL PRIMARY KEY,
    exchange TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    at TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS titan_order_events_by_order
    ON titan_order_events (exchange, client_order_id);
CREATE TABLE IF NOT EXISTS titan_claims (
    exchange TEXT NOT NULL,
    client_order_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (exchange, client_order_id)
);
"""


class PostgresDatabase:
    """A connection pool shared by the journal and the claims of a process."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._users = 0

    def __repr__(self) -> str:
        return "PostgresDatabase(<url hidden>)"

    async def open(self) -> None:
        self._users += 1
        if self._users > 1:
            return
        try:
            # One direct connection first: an unreachable server or a bad password fails
            # start-up at once with its reason (the pool would keep retrying quietly).
            async with await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_SECONDS)
            ) as connection:
                async with connection.transaction():
                    await connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    await connection.execute(_SCHEMA)
        except (psycopg.Error, OSError) as error:
            self._users -= 1
            raise StoreUnavailable(
                f"cannot open the PostgreSQL journal: {_reason(error)}"
            ) from None
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            kwargs={"autocommit": True},
            # A connection the server dropped (restart, fail-over) is replaced on checkout
            # instead of failing the caller's write.
            check=AsyncConnectionPool.check_connection,
            name="titan-journal",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
        except (psycopg.Error, OSError) as error:
            await pool.close()
            self._users -= 1
            raise StoreUnavailable(
                f"cannot open the PostgreSQL journal: {_reason(error)}"
            ) from None
        self._pool = pool

    async def close(self) -> None:
        self._users -= 1
        if self._users > 0 or self._pool is None:
            return
        pool, self._pool = self._pool, None
        await pool.close()

    async def run(self, work: Callable[[Connection], Awaitable[T]], *, write: bool = False) -> T:
        if self._pool is None:
            raise JournalClosed("the order journal is closed")
        try:
            async with self._pool.connection() as connection:
                if not write:
                    return await work(connection)
                async with connection.transaction():
                    return await work(connection)
        except psycopg.OperationalError as error:
            raise StoreUnavailable(
                f"the PostgreSQL journal is unavailable: {_reason(error)}"
            ) from None


def _reason(error: BaseException) -> str:
    # psycopg's messages name host and port at most, never the password; keep one line.
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class PostgresJournal:
    def __init__(
        self, database: PostgresDatabase, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.db = database
        self._clock = clock or (lambda: datetime.now(UTC))

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def record_intent(self, exchange: str, request: OrderRequest) -> JournalEntry | None:
        now = self._clock()
        cid = request.client_order_id

        async def work(db: Connection) -> JournalEntry | None:
            cursor = await db.execute(
                "INSERT INTO titan_orders (exchange, client_order_id, symbol, request, state,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (exchange, client_order_id) DO NOTHING",
                (
                    exchange,
                    cid,
                    request.symbol.canonical,
                    json.dumps(encode_request(request)),
                    JournalState.INTENT.value,
                    now,
                    now,
                ),
            )
            if cursor.rowcount == 1:
                await _event(db, exchange, cid, JournalState.INTENT, "", now)
                return None
            return await _get(db, exchange, cid)

        return await self.db.run(work, write=True)

    async def record_order(self, exchange: str, client_order_id: str, order: Order) -> None:
        now = self._clock()

        async def work(db: Connection) -> None:
            await db.execute(
                "UPDATE titan_orders SET state = %s, order_id = %s, status = %s,"
                " order_json = %s, error_kind = '', error_message = '', updated_at = %s"
                " WHERE exchange = %s AND client_order_id = %s",
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
            await _event(
                db, exchange, client_order_id, JournalState.ACCEPTED, order.status.value, now
            )

        await self.db.run(work, write=True)

    async def record_failure(
        self, exchange: str, client_order_id: str, state: JournalState, kind: str, message: str
    ) -> None:
        now = self._clock()

        async def work(db: Connection) -> None:
            await db.execute(
                "UPDATE titan_orders SET state = %s, error_kind = %s, error_message = %s,"
                " updated_at = %s WHERE exchange = %s AND client_order_id = %s",
                (state.value, kind, message, now, exchange, client_order_id),
            )
            await _event(db, exchange, client_order_id, state, "", now, f"{kind}: {message}")

        await self.db.run(work, write=True)

    async def mark_resending(self, exchange: str, client_order_id: str) -> None:
        now = self._clock()

        async def work(db: Connection) -> None:
            await db.execute(
                "UPDATE titan_orders SET state = %s, attempts = attempts + 1, updated_at = %s"
                " WHERE exchange = %s AND client_order_id = %s",
                (JournalState.INTENT.value, now, exchange, client_order_id),
            )
            await _event(db, exchange, client_order_id, JournalState.INTENT, "", now, "resend")

        await self.db.run(work, write=True)

    async def prune(self, settled_before: datetime) -> int:
        final = [status.value for status in FINAL_STATUSES]

        async def work(db: Connection) -> int:
            cursor = await db.execute(
                "WITH gone AS (DELETE FROM titan_orders WHERE updated_at < %s"
                " AND (state = %s OR (state = %s AND status = ANY(%s)))"
                " RETURNING exchange, client_order_id),"
                " events AS (DELETE FROM titan_order_events e USING gone"
                " WHERE e.exchange = gone.exchange AND e.client_order_id = gone.client_order_id)"
                " SELECT COUNT(*) FROM gone",
                (
                    settled_before,
                    JournalState.REJECTED.value,
                    JournalState.ACCEPTED.value,
                    final,
                ),
            )
            row = await cursor.fetchone()
            return int(row[0]) if row else 0

        return await self.db.run(work, write=True)

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
        clauses: list[str] = []
        args: list[Any] = []
        if exchange:
            clauses.append("exchange = %s")
            args.append(exchange)
        if symbol is not None:
            clauses.append("symbol = %s")
            args.append(symbol.canonical)
        if states:
            clauses.append("state = ANY(%s)")
            args.append([state.value for state in states])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = (
            f"SELECT {_COLUMNS} FROM titan_orders {where}"
            " ORDER BY created_at DESC, seq DESC LIMIT %s"
        )

        async def work(db: Connection) -> list[JournalEntry]:
            cursor = await db.execute(query, (*args, limit))
            return [_entry(row) for row in await cursor.fetchall()]

        return await self.db.run(work)

    async def needing_reconciliation(self) -> list[JournalEntry]:
        async def work(db: Connection) -> list[JournalEntry]:
            cursor = await db.execute(
                f"SELECT {_COLUMNS} FROM titan_orders WHERE state = ANY(%s)"
                " OR (state = %s AND status = ANY(%s)) ORDER BY created_at, seq",
                (
                    [JournalState.INTENT.value, JournalState.AMBIGUOUS.value],
                    JournalState.ACCEPTED.value,
                    [status.value for status in OPEN_STATUSES],
                ),
            )
            return [_entry(row) for row in await cursor.fetchall()]

        return await self.db.run(work)

    async def count_by_state(self) -> dict[JournalState, int]:
        async def work(db: Connection) -> dict[JournalState, int]:
            cursor = await db.execute("SELECT state, COUNT(*) FROM titan_orders GROUP BY state")
            return {JournalState(state): int(count) for state, count in await cursor.fetchall()}

        return await self.db.run(work)


class PostgresClaims:
    """Claims in the journal's database, for several hosts without Redis."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.db = database

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    async def acquire(self, key: ClaimKey, owner: str, lease_seconds: float) -> bool:
        async def work(db: Connection) -> bool:
            # ON CONFLICT DO UPDATE locks the row, so the WHERE sees the latest claim.
            cursor = await db.execute(
                "INSERT INTO titan_claims AS c (exchange, client_order_id, owner, expires_at)"
                " VALUES (%s, %s, %s, clock_timestamp() + make_interval(secs => %s))"
                " ON CONFLICT (exchange, client_order_id) DO UPDATE"
                " SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at"
                " WHERE c.expires_at <= clock_timestamp() OR c.owner = EXCLUDED.owner"
                " RETURNING 1",
                (*key, owner, lease_seconds),
            )
            return await cursor.fetchone() is not None

        return await self.db.run(work)

    async def renew(self, key: ClaimKey, owner: str, lease_seconds: float) -> bool:
        async def work(db: Connection) -> bool:
            cursor = await db.execute(
                "UPDATE titan_claims SET expires_at = clock_timestamp()"
                " + make_interval(secs => %s)"
                " WHERE exchange = %s AND client_order_id = %s AND owner = %s",
                (lease_seconds, *key, owner),
            )
            return cursor.rowcount == 1

        return await self.db.run(work)

    async def release(self, key: ClaimKey, owner: str) -> None:
        async def work(db: Connection) -> None:
            await db.execute(
                "DELETE FROM titan_claims"
                " WHERE exchange = %s AND client_order_id = %s AND owner = %s",
                (*key, owner),
            )

        await self.db.run(work)


async def _event(
    db: Connection,
    exchange: str,
    client_order_id: str,
    state: JournalState,
    status: str,
    at: datetime,
    detail: str = "",
) -> None:
    await db.execute(
        "INSERT INTO titan_order_events (exchange, client_order_id, state, status, detail, at)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (exchange, client_order_id, state.value, status, detail, at),
    )


async def _get(db: Connection, exchange: str, client_order_id: str) -> JournalEntry | None:
    cursor = await db.execute(
        f"SELECT {_COLUMNS} FROM titan_orders WHERE exchange = %s AND client_order_id = %s",
        (exchange, client_order_id),
    )
    row = await cursor.fetchone()
    return _entry(row) if row else None


_COLUMNS = JOURNAL_COLUMNS


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    return entry_from_row(row, _utc)
