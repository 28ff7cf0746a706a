"""Safe order placement: journal first, send once, reconcile by client order id.

``OrderService.place`` is idempotent per (exchange, client order id): a repeated call
with the same id — while the first is still in flight, after it finished, or after a
restart — answers with the existing order and never sends a second one.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from titan_grpc.domain import Order, OrderRequest, Symbol
from titan_grpc.errors import (
    AmbiguousOutcome,
    DuplicateOrder,
    ExchangeError,
    ExchangeUnavailable,
    FeatureUnavailable,
    MalformedResponse,
    NotConfigured,
    OrderNotFound,
    OrderRejected,
    RateLimited,
    TitanError,
    error_class,
)
from titan_grpc.exchanges import ExchangeBackend, ExchangeRegistry
from titan_grpc.net.ratelimit import Lane, budget_lane
from titan_grpc.trading.journal import JournalEntry, JournalState, OrderJournal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CancelAllResult:
    """What a cancel-all did on one venue."""

    exchange: str
    canceled: tuple[Order, ...]
    failures: tuple[tuple[Order, TitanError], ...]
    bulk: bool  # the venue's own bulk cancel was used


def _state_after(error: BaseException) -> JournalState:
    """What a failed send means for the order."""
    if isinstance(error, AmbiguousOutcome | MalformedResponse):
        return JournalState.AMBIGUOUS
    if isinstance(error, ExchangeUnavailable | RateLimited | NotConfigured | FeatureUnavailable):
        return JournalState.UNSENT  # refused before it reached the venue's matching engine
    if isinstance(error, TitanError):
        return JournalState.REJECTED
    return JournalState.AMBIGUOUS  # an unexpected failure: we cannot know


class OrderService:
    def __init__(
        self,
        journal: OrderJournal,
        registry: ExchangeRegistry,
        *,
        settle_seconds: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.journal = journal
        self._registry = registry
        self._settle_seconds = settle_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def _lock_for(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def place(self, backend: ExchangeBackend, request: OrderRequest) -> Order:
        lock = self._lock_for((backend.name, request.client_order_id))
        # The placement lane: reads can never spend the budget a placement needs.
        with budget_lane(Lane.PLACE):
            async with lock:
                return await self._place(backend, request)

    async def cancel(
        self,
        backend: ExchangeBackend,
        symbol: Symbol | None,
        *,
        order_id: str = "",
        client_order_id: str = "",
    ) -> Order:
        """Cancel in the cancel lane (served before anything else), then journal it."""
        with budget_lane(Lane.CANCEL):
            order = await backend.cancel_order(
                symbol, order_id=order_id, client_order_id=client_order_id
            )
        return await self.observed(backend.name, order)

    async def _place(self, backend: ExchangeBackend, request: OrderRequest) -> Order:
        existing = await self.journal.record_intent(backend.name, request)
        if existing is None:
            return await self._send(backend, request)
        return await self._replay(backend, existing, request)

    async def _send(self, backend: ExchangeBackend, request: OrderRequest) -> Order:
        cid = request.client_order_id
        try:
            order = await backend.place_order(request)
        except DuplicateOrder as error:
            # The venue already knows this client order id: it is our order.
            found = await self._lookup(backend, request)
            if found is None:
                await self._record_failure(backend.name, cid, error)
                raise
            order = found
        except BaseException as error:
            await self._record_failure(backend.name, cid, error)
            raise
        await self.journal.record_order(backend.name, cid, order)
        return order

    async def _record_failure(self, exchange: str, cid: str, error: BaseException) -> None:
        state = _state_after(error)
        message = error.message if isinstance(error, TitanError) else type(error).__name__
        await asyncio.shield(
            self.journal.record_failure(exchange, cid, state, type(error).__name__, message)
        )

    async def _replay(
        self, backend: ExchangeBackend, entry: JournalEntry, request: OrderRequest
    ) -> Order:
        cid = request.client_order_id
        if entry.request != request:
            raise DuplicateOrder(
                f"client_order_id {cid!r} was already used for a different order on "
                f"{backend.name}; use a new id",
                exchange=backend.name,
            )
        if entry.state is JournalState.ACCEPTED and entry.order is not None:
            return await self._refresh(backend, entry.order)
        if entry.state is JournalState.REJECTED:
            raise self._replayed_error(backend.name, entry)
        if entry.state is JournalState.UNSENT:
            await self.journal.mark_resending(backend.name, cid)
            return await self._send(backend, request)
        # INTENT (a crash mid-send) or AMBIGUOUS: ask the venue before anything else.
        found = await self._lookup(backend, request)
        if found is not None:
            await self.journal.record_order(backend.name, cid, found)
            return found
        age = (self._clock() - entry.updated_at).total_seconds()
        if age >= self._settle_seconds:
            log.warning(
                "order %s on %s unknown to the venue %.1fs after sending; sending again",
                cid,
                backend.name,
                age,
            )
            await self.journal.mark_resending(backend.name, cid)
            return await self._send(backend, request)
        raise AmbiguousOutcome(
            f"order {cid} on {backend.name} was sent but its outcome is not known yet; "
            f"retry with the same client_order_id (it is never sent twice)",
            exchange=backend.name,
        )

    async def _refresh(self, backend: ExchangeBackend, order: Order) -> Order:
        try:
            current = await backend.get_order(order.symbol, order_id=order.order_id)
        except TitanError:
            return order  # the journal's last known state
        await self.journal.record_order(backend.name, order.client_order_id, current)
        return current

    def _replayed_error(self, exchange: str, entry: JournalEntry) -> TitanError:
        kind = error_class(entry.error_kind)
        message = f"{entry.error_message} (replayed: this client_order_id was rejected before)"
        if issubclass(kind, ExchangeError):
            return kind(message, exchange=exchange)
        return OrderRejected(message, exchange=exchange)

    async def _lookup(self, backend: ExchangeBackend, request: OrderRequest) -> Order | None:
        try:
            return await backend.get_order(request.symbol, client_order_id=request.client_order_id)
        except OrderNotFound:
            return None
        except TitanError as error:
            raise AmbiguousOutcome(
                f"cannot reconcile order {request.client_order_id} on {backend.name} now: "
                f"{error.message}",
                exchange=backend.name,
            ) from None

    async def observe(self, exchange: str, order: Order) -> None:
        """Keep the journal current when a cancel or query shows a journaled order."""
        if await self.journal.get(exchange, order.client_order_id) is not None:
            await self.journal.record_order(exchange, order.client_order_id, order)

    async def reconcile_pending(self) -> dict[str, int]:
        """At start-up: settle INTENT/AMBIGUOUS rows and refresh open orders."""
        with budget_lane(Lane.PLACE):
            return await self._reconcile_pending()

    async def _reconcile_pending(self) -> dict[str, int]:
        outcome = {"resolved": 0, "unsent": 0, "unreachable": 0, "skipped": 0}
        by_name = {backend.name: backend for backend in self._registry.all()}
        for entry in await self.journal.needing_reconciliation():
            backend = by_name.get(entry.exchange)
            if backend is None:
                outcome["skipped"] += 1
                continue
            try:
                found = await self._lookup(backend, entry.request)
            except AmbiguousOutcome as error:
                log.warning("reconciliation of %s deferred: %s", entry.client_order_id, error)
                outcome["unreachable"] += 1
                continue
            if found is not None:
                await self.journal.record_order(entry.exchange, entry.client_order_id, found)
                outcome["resolved"] += 1
            elif entry.state in (JournalState.INTENT, JournalState.AMBIGUOUS):
                age = (self._clock() - entry.updated_at).total_seconds()
                if age >= self._settle_seconds:
                    await self.journal.record_failure(
                        entry.exchange,
                        entry.client_order_id,
                        JournalState.UNSENT,
                        "OrderNotFound",
                        "not known to the venue at reconciliation",
                    )
                    outcome["unsent"] += 1
                else:
                    outcome["unreachable"] += 1
            else:
                log.warning(
                    "journaled open order %s is no longer known to %s",
                    entry.client_order_id,
                    entry.exchange,
                )
                outcome["skipped"] += 1
        log.info("journal reconciliation: %s", outcome)
        return outcome

    # ---- cancels and the venue's open orders ----------------------------------------

    async def cancel_all(self, backend: ExchangeBackend, symbol: Symbol | None) -> CancelAllResult:
        """The kill switch for one venue: its bulk cancel where it has one, else every open
        order one by one; journaled orders are updated either way."""
        with budget_lane(Lane.CANCEL):
            bulk = await backend.cancel_all_orders(symbol)
        if bulk is not None:
            canceled = [await self.observed(backend.name, order) for order in bulk]
            log.info("cancel-all on %s: %d cancelled (bulk)", backend.name, len(canceled))
            return CancelAllResult(backend.name, tuple(canceled), (), True)
        canceled, failures = [], []
        for order in await backend.open_orders(symbol):
            try:
                canceled.append(await self.cancel(backend, order.symbol, order_id=order.order_id))
            except TitanError as error:
                failures.append((order, error))
        log.info(
            "cancel-all on %s: %d cancelled, %d failed",
            backend.name,
            len(canceled),
            len(failures),
        )
        return CancelAllResult(backend.name, tuple(canceled), tuple(failures), False)

    async def open_orders(self, backend: ExchangeBackend, symbol: Symbol | None) -> list[Order]:
        """The venue's open orders, each marked whether this gateway placed it."""
        return [
            await self._marked(backend.name, order) for order in await backend.open_orders(symbol)
        ]

    async def _marked(self, exchange: str, order: Order) -> Order:
        placed = bool(order.client_order_id) and (
            await self.journal.get(exchange, order.client_order_id) is not None
        )
        return replace(order, placed_by_gateway=placed)

    async def observed(self, exchange: str, order: Order) -> Order:
        """``observe`` and mark: the order as the caller should see it."""
        await self.observe(exchange, order)
        return await self._marked(exchange, order)
