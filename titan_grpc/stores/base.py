"""The two store interfaces: the order journal and the in-flight order claims.

Code that uses them (``trading/``, the composition root) never names an engine; the
engines (SQLite, PostgreSQL, Redis) implement these protocols in their own modules.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from titan_grpc.domain import Order, OrderRequest, OrderStatus, Symbol
from titan_grpc.trading.journal import JournalEntry, JournalState, decode_order, decode_request

ClaimKey = tuple[str, str]
"""(exchange, client order id): what one process at a time may send."""

OPEN_STATUSES = (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
FINAL_STATUSES = (
    OrderStatus.FILLED,
    OrderStatus.CANCELED,
    OrderStatus.REJECTED,
    OrderStatus.EXPIRED,
)


class JournalClosed(RuntimeError):
    """The journal was used after close (only during shutdown)."""


def needs_reconciliation(entry: JournalEntry) -> bool:
    """INTENT and AMBIGUOUS rows, and accepted orders the venue still had open."""
    if entry.state in (JournalState.INTENT, JournalState.AMBIGUOUS):
        return True
    return (
        entry.state is JournalState.ACCEPTED
        and entry.order is not None
        and entry.order.status in OPEN_STATUSES
    )


class JournalStore(Protocol):
    """One row per (exchange, client order id), written before the order is sent.

    Every write is durable when the call returns.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def record_intent(self, exchange: str, request: OrderRequest) -> JournalEntry | None:
        """Insert the INTENT row; return the existing entry instead if the id is taken."""
        ...

    async def record_order(self, exchange: str, client_order_id: str, order: Order) -> None: ...

    async def record_failure(
        self, exchange: str, client_order_id: str, state: JournalState, kind: str, message: str
    ) -> None: ...

    async def mark_resending(self, exchange: str, client_order_id: str) -> None:
        """Back to INTENT for another attempt (only after UNSENT or a settled AMBIGUOUS)."""
        ...

    async def get(self, exchange: str, client_order_id: str) -> JournalEntry | None: ...

    async def list_entries(
        self,
        *,
        exchange: str | None = None,
        symbol: Symbol | None = None,
        states: tuple[JournalState, ...] = (),
        limit: int = 100,
    ) -> list[JournalEntry]:
        """Newest first."""
        ...

    async def needing_reconciliation(self) -> list[JournalEntry]:
        """Oldest first; see ``needs_reconciliation``."""
        ...

    async def count_by_state(self) -> dict[JournalState, int]: ...

    async def prune(self, settled_before: datetime) -> int:
        """Delete settled rows (REJECTED, or ACCEPTED in a final venue status) last
        updated before ``settled_before``, with their events. Returns how many rows went.
        Never touches a row that reconciliation may still need."""
        ...


class ClaimStore(Protocol):
    """Claims with an owner and a lease: at most one live owner per key.

    ``acquire`` succeeds when the key is free, its lease has run out (the owner died or
    stalled), or ``owner`` already holds it; a live owner's claim is never taken over.
    """

    async def acquire(self, key: ClaimKey, owner: str, lease_seconds: float) -> bool: ...

    async def renew(self, key: ClaimKey, owner: str, lease_seconds: float) -> bool:
        """Extend the lease if ``owner`` still holds the claim; False if it was lost."""
        ...

    async def release(self, key: ClaimKey, owner: str) -> None:
        """Drop the claim if ``owner`` holds it (never someone else's)."""
        ...

    async def close(self) -> None: ...


# The journal row's columns as every engine selects them, and the entry they make.
JOURNAL_COLUMNS = (
    "exchange, client_order_id, request, state, order_json, error_kind, error_message,"
    " attempts, created_at, updated_at"
)


def entry_from_row(row: tuple[Any, ...], read_time: Callable[[Any], datetime]) -> JournalEntry:
    """A JournalEntry from a row of JOURNAL_COLUMNS; ``read_time`` reads the engine's time."""
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
        created_at=read_time(created),
        updated_at=read_time(updated),
    )
