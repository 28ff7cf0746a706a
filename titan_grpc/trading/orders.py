"""Safe order placement: claim, journal first, send once, reconcile by client order id.

``OrderService.place`` is idempotent per (exchange, client order id): a repeated call
with the same id — while the first is still in flight (in this process or another one
sharing the stores), after it finished, or after a restart — answers with the existing
order and never sends a second one.

One process at a time works on an id: it holds the id's claim (owner + lease, renewed
while it works). Callers elsewhere wait for the claim, then read the journal. A claim
whose owner died runs out with its lease; the next owner finds the row in INTENT or
AMBIGUOUS and asks the venue by client order id before anything is sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

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
from titan_grpc.stores import ClaimBusy, ClaimKey, Claims, JournalStore, needs_reconciliation
from titan_grpc.trading.journal import JournalEntry, JournalState

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


DEFAULT_SETTLE_SECONDS = 30.0
DEFAULT_CLAIM_WAIT_SECONDS = 20.0
DEFAULT_RECONCILE_CONCURRENCY = 8


def _news_for(entry: JournalEntry, order: Order) -> bool:
    """Whether a private feed's report of ``order`` tells the journal something new."""
    known = entry.order
    if entry.state is JournalState.REJECTED and known is not None:
        return False
    if entry.state is not JournalState.ACCEPTED or known is None:
        return True  # an intent or an ambiguous placement: the venue has it
    if (known.status, known.filled_quantity) == (order.status, order.filled_quantity):
        return False
    older = order.filled_quantity < known.filled_quantity or (
        not known.status.is_open and order.status.is_open
    )
    return not older


class OrderService:
    def __init__(
        self,
        journal: JournalStore,
        claims: Claims,
        registry: ExchangeRegistry,
        *,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        claim_wait_seconds: float = DEFAULT_CLAIM_WAIT_SECONDS,
        reconcile_concurrency: int = DEFAULT_RECONCILE_CONCURRENCY,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.journal = journal
        self.claims = claims
        self._registry = registry
        self._settle_seconds = settle_seconds
        self._claim_wait_seconds = claim_wait_seconds
        self._reconcile_concurrency = max(1, reconcile_concurrency)
        self._clock = clock or (lambda: datetime.now(UTC))
        # Ids that start-up reconciliation has not settled yet: placements wait for them.
        self._reconciling: dict[ClaimKey, asyncio.Event] = {}

    async def place(self, backend: ExchangeBackend, request: OrderRequest) -> Order:
        key = (backend.name, request.client_order_id)
        pending = self._reconciling.get(key)
        if pending is not None:
            await pending.wait()
        try:
            # The placement lane: reads can never spend the budget a placement needs.
            with budget_lane(Lane.PLACE):
                async with self.claims.hold(key, wait_seconds=self._claim_wait_seconds):
                    return await self._place(backend, request)
        except ClaimBusy:
            raise AmbiguousOutcome(
                f"order {request.client_order_id} on {backend.name} is being placed by another "
                "call right now; retry with the same client_order_id (it is never sent twice)",
                exchange=backend.name,
            ) from None

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
            # The venue already knows this client order id: it is our order. A lookup
            # that cannot see it yet proves nothing: keep it AMBIGUOUS and reconcile.
            found = await self._lookup_after_duplicate(backend, request)
            if found is None:
                ambiguous = AmbiguousOutcome(
                    f"{backend.name} reports client_order_id {cid!r} as a duplicate but "
                    f"does not show the order yet; retry with the same client_order_id",
                    exchange=backend.name,
                    venue_code=error.venue_code,
                    venue_message=error.venue_message,
                )
                await self._record_failure(backend.name, cid, ambiguous)
                raise ambiguous from None
            order = found
        except BaseException as error:
            await self._record_failure(backend.name, cid, error)
            raise
        await self.journal.record_order(backend.name, cid, order)
        return order

    async def _lookup_after_duplicate(
        self, backend: ExchangeBackend, request: OrderRequest
    ) -> Order | None:
        try:
            return await self._lookup(backend, request)
        except AmbiguousOutcome:
            return None

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

    async def learn(self, exchange: str, order: Order) -> bool:
        """The private feed reported ``order``: journal its state (an ambiguous placement
        is resolved here). Answers whether TITAN placed it (it is in the journal).

        Holds the id's claim (waiting for a placement of the same id in flight), so the
        feed never races the placement's own record; a state older than the journal's is
        not written back."""
        if not order.client_order_id:
            return False
        entry = await self.journal.get(exchange, order.client_order_id)
        if entry is None or not _news_for(entry, order):
            return entry is not None  # nothing to write: no claim taken
        key = (exchange, order.client_order_id)
        try:
            async with self.claims.hold(key, wait_seconds=self._claim_wait_seconds):
                entry = await self.journal.get(exchange, order.client_order_id)
                if entry is not None and _news_for(entry, order):
                    await self.journal.record_order(exchange, order.client_order_id, order)
        except ClaimBusy:
            pass  # still being placed or reconciled elsewhere: that call records the outcome
        return True

    async def reconcile_pending(self) -> dict[str, int]:
        """Settle INTENT/AMBIGUOUS rows and refresh open orders (at start-up, in the
        background). Rows are worked on concurrently (bounded); each one only under its
        claim, so only one process reconciles a row and a live sender is never disturbed.
        Placements of ids still waiting here wait for them; other ids go at once."""
        with budget_lane(Lane.PLACE):
            return await self._reconcile_pending()

    async def _reconcile_pending(self) -> dict[str, int]:
        outcome: Counter[str] = Counter()
        entries = await self.journal.needing_reconciliation()
        for entry in entries:
            self._reconciling.setdefault((entry.exchange, entry.client_order_id), asyncio.Event())
        limit = asyncio.Semaphore(self._reconcile_concurrency)

        async def settle(entry: JournalEntry) -> None:
            key = (entry.exchange, entry.client_order_id)
            try:
                async with limit:
                    outcome[await self._reconcile_one(entry)] += 1
            except Exception as error:  # a store outage: this row waits for next time
                log.warning("reconciliation of %s failed: %s", entry.client_order_id, error)
                outcome["unreachable"] += 1
            finally:
                event = self._reconciling.pop(key, None)
                if event is not None:
                    event.set()

        try:
            await asyncio.gather(*(settle(entry) for entry in entries))
        finally:
            for event in self._reconciling.values():
                event.set()
            self._reconciling.clear()
        log.info("journal reconciliation: %s", dict(outcome))
        return {name: outcome[name] for name in ("resolved", "unsent", "unreachable", "skipped")}

    async def _reconcile_one(self, listed: JournalEntry) -> str:
        by_name = {backend.name: backend for backend in self._registry.all()}
        backend = by_name.get(listed.exchange)
        if backend is None:
            return "skipped"
        key = (listed.exchange, listed.client_order_id)
        # Wait out a live holder (it is sending or reconciling this id; afterwards the
        # row no longer needs us) and a dead one's lease (then the venue is asked first).
        wait = self.claims.lease_seconds * 2 + self._claim_wait_seconds
        try:
            async with self.claims.hold(key, wait_seconds=wait):
                return await self._reconcile_held(backend, listed)
        except ClaimBusy:
            return "unreachable"

    async def _reconcile_held(self, backend: ExchangeBackend, listed: JournalEntry) -> str:
        entry = await self.journal.get(listed.exchange, listed.client_order_id)
        # Read again under the claim: a row that changed since it was listed was settled
        # (or refreshed) by another process meanwhile, so only one process works on it.
        if entry is None or entry.updated_at != listed.updated_at:
            return "skipped"
        if not needs_reconciliation(entry):
            return "skipped"
        try:
            found = await self._lookup(backend, entry.request)
        except AmbiguousOutcome as error:
            log.warning("reconciliation of %s deferred: %s", entry.client_order_id, error)
            return "unreachable"
        if found is not None:
            await self.journal.record_order(entry.exchange, entry.client_order_id, found)
            return "resolved"
        if entry.state in (JournalState.INTENT, JournalState.AMBIGUOUS):
            age = (self._clock() - entry.updated_at).total_seconds()
            if age < self._settle_seconds:
                return "unreachable"
            await self.journal.record_failure(
                entry.exchange,
                entry.client_order_id,
                JournalState.UNSENT,
                "OrderNotFound",
                "not known to the venue at reconciliation",
            )
            return "unsent"
        log.warning(
            "journaled open order %s is no longer known to %s",
            entry.client_order_id,
            entry.exchange,
        )
        return "skipped"

    async def prune(self, retention: timedelta) -> int:
        """Forget settled orders last updated longer than ``retention`` ago."""
        removed = await self.journal.prune(self._clock() - retention)
        if removed:
            log.info(
                "journal retention: pruned %d settled orders older than %s", removed, retention
            )
        return removed

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
