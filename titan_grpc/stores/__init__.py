"""Coordination stores: the order journal and the in-flight order claims.

Callers use the interfaces (``JournalStore``, ``ClaimStore``, ``Claims``) and never name
an engine. ``open_stores`` is the one place that picks the engines from configuration:

| configuration                 | journal              | claims                          |
|-------------------------------|----------------------|---------------------------------|
| (default)                     | SQLite file          | the same SQLite file            |
| ``TITAN_JOURNAL_URL``         | PostgreSQL           | PostgreSQL (same database)      |
| ``TITAN_REDIS_URL`` as well   | SQLite or PostgreSQL | Redis                           |
"""

from __future__ import annotations

from dataclasses import dataclass

from titan_grpc.stores.base import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    ClaimKey,
    ClaimStore,
    JournalClosed,
    JournalStore,
    needs_reconciliation,
)
from titan_grpc.stores.claims import ClaimBusy, Claims, new_owner_id

__all__ = [
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "ClaimBusy",
    "ClaimKey",
    "ClaimStore",
    "Claims",
    "JournalClosed",
    "JournalStore",
    "Stores",
    "needs_reconciliation",
    "new_owner_id",
    "open_stores",
]


@dataclass(frozen=True, slots=True)
class Stores:
    journal: JournalStore
    claims: ClaimStore
    engines: str  # for the start-up log line, e.g. "journal sqlite, claims redis"

    async def close(self) -> None:
        await self.claims.close()
        await self.journal.close()


async def open_stores(*, journal_path: str, journal_url: str = "", redis_url: str = "") -> Stores:
    """Open the journal and the claim store chosen by configuration.

    Raises StoreUnavailable (a remote engine cannot be reached) or sqlite3.Error.
    """
    journal: JournalStore
    claims: ClaimStore | None = None
    if journal_url:
        from titan_grpc.stores.postgres import PostgresClaims, PostgresDatabase, PostgresJournal

        database = PostgresDatabase(journal_url)
        postgres_journal = PostgresJournal(database)
        await postgres_journal.open()
        journal, engines = postgres_journal, "journal postgresql"
        if not redis_url:
            postgres_claims = PostgresClaims(database)
            await postgres_claims.open()
            claims = postgres_claims
    else:
        from titan_grpc.stores.sqlite import SqliteClaims, SqliteJournal

        sqlite_journal = SqliteJournal(journal_path)
        await sqlite_journal.open()
        journal, engines = sqlite_journal, "journal sqlite"
        if not redis_url:
            sqlite_claims = SqliteClaims(sqlite_journal.db)
            await sqlite_claims.open()
            claims = sqlite_claims
    if claims is not None:
        return Stores(journal, claims, f"{engines}, claims in the journal")
    from titan_grpc.stores.redis_claims import RedisClaims
    from titan_grpc.stores.redis_client import open_redis

    try:
        claims = RedisClaims(await open_redis(redis_url, purpose="claims"))
    except BaseException:
        await journal.close()
        raise
    return Stores(journal, claims, f"{engines}, claims redis")
