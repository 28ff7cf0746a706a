"""The account's private feeds: one per venue account however many subscribers.

``AccountTracker`` (pure) keeps what the feed has told so far — every order's state and
the fills already delivered, the balances — and turns what a venue reports into the
changes worth sending: a fill seen twice (the live feed, then the REST catch-up) goes
out once; a state the subscribers already know goes out not at all.

``account_feed`` runs one venue's private feed through its tracker: on every
(re)subscription it fetches the open orders, the fills of orders that moved and the
balances (REST, the read lane), emits what changed while it was not listening, and
tells the journal about every order change (``learn``) before subscribers see it.

``AccountFeeds`` shares these feeds through a non-conflating hub (every fill reaches
every subscriber once, in order) and keeps a venue's feed open while TITAN has open
orders there, even with nobody listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from titan_grpc.domain import (
    MONEY_CONTEXT,
    ZERO,
    AccountEvent,
    AccountFeedConnected,
    Balance,
    BalanceUpdate,
    FeedInterrupted,
    FeedRecovered,
    Fill,
    Order,
    OrderStatus,
    OrderUpdate,
    Symbol,
)
from titan_grpc.errors import InvalidArgument, OrderNotFound, TitanError
from titan_grpc.exchanges import ExchangeBackend, ExchangeRegistry
from titan_grpc.market.hub import Notice, StreamHub, Subscription

log = logging.getLogger(__name__)

ORDERS_KEPT = 1000  # finished orders remembered per venue (open ones are always kept)
QUEUE_LIMIT = 10_000  # updates a subscriber may lag behind before a GAP and catch-up
RECENT_FILLS = 100  # per symbol, fetched after a gap to find orders that ran meanwhile
CLOCK_MARGIN = timedelta(seconds=60)

Learn = Callable[[str, Order], Awaitable[bool]]


def _same_state(new: Order, known: Order) -> bool:
    """Nothing a subscriber sees has changed (a report without the fee, as order
    queries and execution reports give, does not change the summed fee)."""
    return (new.status, new.filled_quantity) == (known.status, known.filled_quantity) and (
        new.fee is None or new.fee == known.fee
    )


def _is_older(new: Order, known: Order) -> bool:
    """True when ``new`` is a state the order has already moved past."""
    if new.filled_quantity < known.filled_quantity:
        return True
    return not known.status.is_open and new.status.is_open


def after_fill(order: Order, fill: Fill) -> Order:
    """``order`` as it stands once ``fill`` is added (a catch-up rebuilding the states a
    live feed would have shown between fills)."""
    filled = order.filled_quantity + fill.quantity
    status = OrderStatus.FILLED if filled >= order.quantity else OrderStatus.PARTIALLY_FILLED
    return replace(
        order,
        status=status,
        filled_quantity=filled,
        filled_quote_quantity=MONEY_CONTEXT.add(order.filled_quote_quantity, fill.quote_quantity),
        fee=(order.fee or ZERO) + fill.fee,
        updated_time=fill.time,
        fills=(*order.fills, fill),
    )


class AccountTracker:
    """What one venue account's feed has delivered so far (pure; no I/O)."""

    def __init__(self, exchange: str) -> None:
        self.exchange = exchange
        self._orders: OrderedDict[str, Order] = OrderedDict()
        self._by_client_id: dict[str, str] = {}
        self._balances: dict[str, Balance] = {}
        self.seeded = False
        self.live = False  # subscribed and caught up: the tracker is current
        self.last_event_time: datetime | None = None

    # ---- reads -------------------------------------------------------------------

    def order(self, order_id: str = "", client_order_id: str = "") -> Order | None:
        if not order_id:
            order_id = self._by_client_id.get(client_order_id, "")
        found = self._orders.get(order_id)
        if found is not None and client_order_id and found.client_order_id != client_order_id:
            return None
        return found

    def open_orders(self) -> list[Order]:
        return [order for order in self._orders.values() if order.status.is_open]

    def symbols(self) -> list[Symbol]:
        return sorted({order.symbol for order in self._orders.values()}, key=str)

    def balances(self) -> list[Balance]:
        return sorted(self._balances.values(), key=lambda b: b.asset)

    def snapshot(self) -> list[AccountEvent]:
        """The current state as updates with no fill (a lagging subscriber's catch-up)."""
        events: list[AccountEvent] = [
            OrderUpdate(replace(order, fills=()), None, order.updated_time)
            for order in self._orders.values()
        ]
        if self._balances:
            now = datetime.now(UTC)
            events.append(BalanceUpdate(self.exchange, tuple(self.balances()), now))
        return events

    # ---- changes -----------------------------------------------------------------

    def apply(self, update: OrderUpdate) -> OrderUpdate | None:
        """The update to send for what the venue reported, or None if nothing is new."""
        order, fill = update.order, update.fill
        known = self._orders.get(order.order_id)
        seen = known.fills if known is not None else ()
        if fill is not None and any(f.trade_id == fill.trade_id for f in seen):
            fill = None  # delivered already (live feed, then catch-up)
        if fill is None and known is not None:
            if _same_state(order, known) or _is_older(order, known):
                return None
        fills = (*seen, fill) if fill is not None else seen
        fee, fee_asset = order.fee, order.fee_asset
        if fee is None and fills:
            fee_asset = fills[0].fee_asset  # summed in one asset, as the REST answers do
            fee = sum((f.fee for f in fills if f.fee_asset == fee_asset), ZERO)
        placed = order.placed_by_gateway or (known is not None and known.placed_by_gateway)
        merged = replace(order, fills=fills, fee=fee, fee_asset=fee_asset, placed_by_gateway=placed)
        self._remember(merged)
        self.last_event_time = update.venue_time
        return replace(update, order=merged, fill=fill)

    def apply_balances(
        self, update: BalanceUpdate, *, complete: bool = False
    ) -> BalanceUpdate | None:
        """The balances that changed; ``complete`` says the update lists every asset (an
        asset missing from it is now zero)."""
        changed = [b for b in update.balances if self._balances.get(b.asset) != b]
        if complete:
            given = {b.asset for b in update.balances}
            changed += [Balance(a, ZERO, ZERO) for a in self._balances if a not in given]
        for balance in changed:
            self._balances[balance.asset] = balance
        return replace(update, balances=tuple(changed)) if changed else None

    def mark_placed(self, order_id: str, placed: bool) -> None:
        """Whether TITAN placed the order (the journal knows; the venue does not)."""
        known = self._orders.get(order_id)
        if known is not None and known.placed_by_gateway != placed:
            self._orders[order_id] = replace(known, placed_by_gateway=placed)

    def _remember(self, order: Order) -> None:
        self._orders[order.order_id] = order
        self._orders.move_to_end(order.order_id)
        if order.client_order_id:
            self._by_client_id[order.client_order_id] = order.order_id
        finished = len(self._orders) - len(self.open_orders())
        while finished > ORDERS_KEPT:
            for oid, old in self._orders.items():
                if not old.status.is_open:
                    del self._orders[oid]
                    self._by_client_id.pop(old.client_order_id, None)
                    finished -= 1
                    break


async def catch_up(backend: ExchangeBackend, tracker: AccountTracker) -> list[AccountEvent]:
    """What changed on the account while its feed was not listening (REST): fills of the
    orders that moved, in venue order, then their current state, then the balances."""
    try:
        open_now = await backend.open_orders(None)
    except InvalidArgument:  # a venue that lists open orders per symbol (KuCoin)
        open_now = []
        for symbol in tracker.symbols():
            open_now += await backend.open_orders(symbol)
    current: dict[str, Order] = {o.order_id: o for o in open_now}
    for known in tracker.open_orders():  # finished meanwhile: ask for the final state
        if known.order_id not in current:
            with contextlib.suppress(OrderNotFound):
                current[known.order_id] = await backend.get_order(
                    known.symbol, order_id=known.order_id
                )
    last = tracker.last_event_time
    if tracker.seeded and last is not None:  # orders that began and ended meanwhile
        since = last - CLOCK_MARGIN  # venue clocks and event times disagree a little
        for symbol in tracker.symbols():
            for fill in await backend.my_trades(symbol, limit=RECENT_FILLS):
                if (
                    fill.time >= since
                    and fill.order_id not in current
                    and tracker.order(fill.order_id) is None
                ):
                    with contextlib.suppress(OrderNotFound):
                        current[fill.order_id] = await backend.get_order(
                            symbol, order_id=fill.order_id
                        )
    events: list[AccountEvent] = []
    for order in sorted(current.values(), key=lambda o: o.created_time):
        tracked = tracker.order(order.order_id)
        base: Order = (
            tracked
            if tracked is not None
            else replace(
                order,
                status=OrderStatus.NEW,
                filled_quantity=ZERO,
                filled_quote_quantity=ZERO,
                fee=None,
                fills=(),
            )
        )
        if tracker.seeded and order.filled_quantity > base.filled_quantity:
            fills = order.fills or tuple(
                await backend.my_trades(order.symbol, order_id=order.order_id, limit=1000)
            )
            seen = {f.trade_id for f in base.fills}
            # Fills from before the tracker knew the order have ids it never saw; the
            # quantity it already counted tells them apart.
            counted, running = base.filled_quantity, ZERO
            for fill in sorted(fills, key=lambda f: (f.time, f.trade_id)):
                running += fill.quantity
                if fill.trade_id in seen or running <= counted:
                    continue
                base = after_fill(base, fill)
                sent = tracker.apply(OrderUpdate(base, fill, fill.time))
                if sent is not None:
                    events.append(sent)
        sent = tracker.apply(OrderUpdate(order, None, order.updated_time))
        if sent is not None:
            events.append(sent)
    balances = await backend.balances()
    moved = tracker.apply_balances(
        BalanceUpdate(backend.name, tuple(balances), datetime.now(UTC)),
        complete=True,
    )
    if moved is not None:
        events.append(moved)
    return events


async def account_feed(
    backend: ExchangeBackend,
    tracker: AccountTracker,
    learn: Learn,
    on_progress: Callable[[], None] = lambda: None,
) -> AsyncIterator[AccountEvent | FeedInterrupted | FeedRecovered]:
    """One venue's private feed through its tracker, caught up after every reconnect.

    The first subscription only seeds the tracker (nothing happened "since" before it),
    except that the journal still learns the orders' current state."""
    try:
        async for item in backend.watch_account():
            if isinstance(item, FeedInterrupted):
                tracker.live = False
                yield item
                continue
            if isinstance(item, AccountFeedConnected):
                first = not tracker.seeded
                events = await catch_up(backend, tracker)
                tracker.seeded, tracker.live = True, True
                on_progress()
                yield FeedRecovered()
                for event in events:
                    sent = await _learned(tracker, event, learn)
                    if not first:
                        yield sent
                on_progress()
                continue
            if isinstance(item, OrderUpdate):
                update = tracker.apply(item)
                if update is not None:
                    learned = await _learned(tracker, update, learn)
                    on_progress()
                    yield learned
            elif isinstance(item, BalanceUpdate):
                moved = tracker.apply_balances(item)
                if moved is not None:
                    yield moved
    finally:
        tracker.live = False


async def _learned(tracker: AccountTracker, event: AccountEvent, learn: Learn) -> AccountEvent:
    if not isinstance(event, OrderUpdate):
        return event
    exchange = tracker.exchange
    try:
        placed = await learn(exchange, event.order)
    except TitanError as error:  # the journal must not stop the feed
        log.warning("journal could not learn order %s: %s", event.order.order_id, error)
        placed = False
    tracker.mark_placed(event.order.order_id, placed)
    return replace(event, order=replace(event.order, placed_by_gateway=placed))


class AccountFeeds:
    """The private feeds of every venue account, shared by all subscribers."""

    def __init__(
        self,
        registry: ExchangeRegistry,
        learn: Learn,
        *,
        on_notice: Callable[[str, Notice], None] | None = None,
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self._registry = registry
        self._learn = learn
        self._trackers: dict[str, AccountTracker] = {}
        self._keepers: dict[str, asyncio.Task[None]] = {}
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self.hub: StreamHub[str, AccountEvent] = StreamHub(
            self._open,
            on_notice=on_notice,
            queue_limit=queue_limit,
            catch_up=lambda venue: self.tracker(venue).snapshot(),
        )

    def tracker(self, venue: str) -> AccountTracker:
        tracker = self._trackers.get(venue)
        if tracker is None:
            tracker = self._trackers[venue] = AccountTracker(venue)
        return tracker

    def _open(self, venue: str) -> AsyncIterator[AccountEvent | FeedInterrupted | FeedRecovered]:
        backend = self._registry.resolve(venue)
        return account_feed(
            backend, self.tracker(venue), self._learn, lambda: self._progress(venue)
        )

    def subscribe(self, venues: Sequence[str]) -> Subscription[str, AccountEvent]:
        subscription = self.hub.subscribe(*venues)
        self._poke()
        return subscription

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds; checked whenever a feed subscribes, catches
        up, learns an order change or lets a subscriber go (tests, operators' tools)."""
        if condition():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, waiter))
        try:
            await waiter
        finally:
            self._waiters = [(c, w) for c, w in self._waiters if w is not waiter]

    def _poke(self) -> None:
        for condition, waiter in list(self._waiters):
            if not waiter.done() and condition():
                waiter.set_result(None)

    def _progress(self, venue: str) -> None:
        self._release_keeper(venue)
        self._poke()

    def known_order(self, venue: str, order_id: str, client_order_id: str) -> Order | None:
        """A finished order as the live feed reported it (a final state never changes);
        None for an open one (the feed may be a moment behind the venue) or when the feed
        is not open and current."""
        tracker = self._trackers.get(venue)
        if tracker is None or not tracker.live or self.hub.subscriber_count(venue) == 0:
            return None
        order = tracker.order(order_id, client_order_id)
        if order is None or order.status.is_open:
            return None
        if sum((f.quantity for f in order.fills), ZERO) != order.filled_quantity:
            return None  # fills from before the feed knew the order: the venue has them
        return order

    def keep_open(self, venue: str) -> None:
        """Hold the venue's feed open while TITAN has open orders there."""
        if venue in self._keepers:
            return
        subscription = self.hub.subscribe(venue)
        self._keepers[venue] = asyncio.create_task(self._drain(venue, subscription))

    async def _drain(self, venue: str, subscription: Subscription[str, AccountEvent]) -> None:
        try:
            async for _ in subscription:
                pass
        finally:
            subscription.close()
            if self._keepers.get(venue) is asyncio.current_task():
                del self._keepers[venue]
            self._poke()

    def _release_keeper(self, venue: str) -> None:
        task = self._keepers.get(venue)
        if task is not None and not self.tracker(venue).open_orders():
            del self._keepers[venue]
            # Not from inside the feed's own task: the last one out cancels it.
            asyncio.get_running_loop().call_soon(task.cancel)

    def end_all(self) -> None:
        self.hub.end_all()

    async def close(self) -> None:
        keepers = list(self._keepers.values())
        self._keepers.clear()
        for task in keepers:
            task.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        await self.hub.close()
