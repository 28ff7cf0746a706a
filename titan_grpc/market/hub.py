"""Fan-out hub: one upstream feed per key, shared by every subscriber of that key.

The upstream starts with the first subscriber and is closed when the last one leaves.
Each subscriber holds only the latest item (conflation: a slow or stuck subscriber skips
to the newest quote instead of queueing) plus a few notices, so it can neither delay the
others nor grow memory. When the upstream fails, subscribers get a GAP notice, the
upstream is reopened with backoff and jitter, and a RECOVERED notice follows its first
item. An upstream that resyncs itself reports a gap in-band (``FeedInterrupted``) and
carries on; subscribers see the same GAP then RECOVERED notices (``FeedRecovered`` in-band
sends RECOVERED without waiting for the next item).

A hub built with ``queue_limit`` does not conflate: each subscriber gets every item once,
in order, through a bounded queue (order updates and fills). A subscriber that falls
``queue_limit`` items behind loses its queue but never silently: it gets a GAP notice,
the hub's ``catch_up`` items for the key (the current state), then RECOVERED.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from titan_grpc.domain import FeedInterrupted, FeedRecovered

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

NOTICES_KEPT = 8


class NoticeKind(enum.Enum):
    GAP = "gap"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    message: str


@dataclass(frozen=True, slots=True)
class HubEvent(Generic[K, T]):
    """Either an item or a notice, for one of the subscription's keys."""

    key: K
    item: T | None = None
    notice: Notice | None = None


class Subscription(Generic[K, T]):
    """One subscriber's view of one or more feeds.

    It keeps only the newest unread item per key and a few notices, and wakes its reader
    with a single event however many feeds it follows: no task or queue per message.
    """

    def __init__(
        self, hub: StreamHub[K, T], keys: tuple[K, ...], queue_limit: int | None = None
    ) -> None:
        self._hub = hub
        self.keys = keys
        self._latest: dict[K, T] = {}
        self._notices: deque[tuple[K, Notice]] = deque(maxlen=NOTICES_KEPT * len(keys))
        # Queue mode (no conflation): items and notices in arrival order.
        self._queue_limit = queue_limit
        self._queue: deque[HubEvent[K, T]] = deque()
        self._ready = asyncio.Event()
        self._ended = False
        self.conflated = 0  # items replaced before this subscriber read them
        self.overflows = 0  # queue mode: times this subscriber fell too far behind

    def _offer(self, key: K, item: T) -> None:
        if self._queue_limit is not None:
            if len(self._queue) >= self._queue_limit:
                self._overflow(key)
            else:
                self._queue.append(HubEvent(key, item=item))
            self._ready.set()
            return
        if key in self._latest:
            self.conflated += 1
        self._latest[key] = item
        self._ready.set()

    def _overflow(self, key: K) -> None:
        """Too far behind: the queue goes, replaced by GAP, the current state, RECOVERED."""
        self.overflows += 1
        self._queue.clear()
        self._queue.append(HubEvent(key, notice=Notice(NoticeKind.GAP, "subscriber too slow")))
        for current in self._hub._catch_up_items(key):
            self._queue.append(HubEvent(key, item=current))
        self._queue.append(HubEvent(key, notice=Notice(NoticeKind.RECOVERED, "caught up")))

    def _notify(self, key: K, notice: Notice) -> None:
        if self._queue_limit is not None:
            self._queue.append(HubEvent(key, notice=notice))
            self._ready.set()
            return
        if notice.kind is NoticeKind.GAP:
            # An unread item from before the gap must not be delivered after its notice.
            self._latest.pop(key, None)
        self._notices.append((key, notice))
        self._ready.set()

    def end(self) -> None:
        """Stop the iteration after what is already queued (server shutdown)."""
        self._ended = True
        self._ready.set()

    def close(self) -> None:
        """Leave the feeds (idempotent); the last subscriber out closes an upstream."""
        self._hub._leave(self)

    async def __aiter__(self) -> AsyncIterator[HubEvent[K, T]]:
        try:
            while True:
                # Notices first, checked again after every item handed out: a GAP that
                # arrived while an item was being written must precede the next item.
                if self._queue:
                    yield self._queue.popleft()
                elif self._notices:
                    key, notice = self._notices.popleft()
                    yield HubEvent(key, notice=notice)
                elif self._latest:
                    key = next(iter(self._latest))
                    yield HubEvent(key, item=self._latest.pop(key))
                elif self._ended:
                    return
                else:
                    self._ready.clear()
                    await self._ready.wait()
        finally:
            self._hub._leave(self)


class _Upstream(Generic[K, T]):
    def __init__(self, key: K) -> None:
        self.key = key
        self.subscribers: set[Subscription[K, T]] = set()
        self.task: asyncio.Task[None] | None = None
        # The newest item, handed at once to a subscriber joining a running feed (a
        # feed that only speaks on change would otherwise leave it waiting).
        self.last: T | None = None
        self.has_last = False


class StreamHub(Generic[K, T]):
    def __init__(
        self,
        opener: Callable[[K], AsyncIterator[T | FeedInterrupted | FeedRecovered]],
        *,
        base_backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 15.0,
        rng: random.Random | None = None,
        on_notice: Callable[[K, Notice], None] | None = None,
        queue_limit: int | None = None,
        catch_up: Callable[[K], Sequence[T]] | None = None,
    ) -> None:
        self._opener = opener
        self._queue_limit = queue_limit
        self._catch_up = catch_up
        self._on_notice = on_notice
        self._upstreams: dict[K, _Upstream[K, T]] = {}
        self._subscriptions: set[Subscription[K, T]] = set()
        self._base_backoff = base_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._rng = rng or random.Random()

    @property
    def upstream_count(self) -> int:
        return len(self._upstreams)

    def latest(self, key: K) -> T | None:
        """The newest item of the running feed for ``key`` (None without one, or after a
        gap until the feed has recovered)."""
        upstream = self._upstreams.get(key)
        if upstream is None or not upstream.has_last:
            return None
        return upstream.last

    def subscriber_count(self, key: K) -> int:
        upstream = self._upstreams.get(key)
        return len(upstream.subscribers) if upstream else 0

    def subscribe(self, *keys: K) -> Subscription[K, T]:
        """Join the feeds of ``keys`` (opening each that has no subscriber yet)."""
        subscription: Subscription[K, T] = Subscription(
            self, tuple(dict.fromkeys(keys)), self._queue_limit
        )
        self._subscriptions.add(subscription)
        for key in subscription.keys:
            upstream = self._upstreams.get(key)
            if upstream is None:
                upstream = _Upstream(key)
                self._upstreams[key] = upstream
                upstream.task = asyncio.create_task(self._pump(upstream))
            upstream.subscribers.add(subscription)
            if upstream.has_last and self._queue_limit is None:
                subscription._offer(key, upstream.last)  # type: ignore[arg-type]
        return subscription

    def _catch_up_items(self, key: K) -> Sequence[T]:
        return self._catch_up(key) if self._catch_up is not None else ()

    def end_all(self) -> None:
        """End every subscriber's iteration (server shutdown)."""
        for subscription in list(self._subscriptions):
            subscription.end()

    def _leave(self, subscription: Subscription[K, T]) -> None:
        self._subscriptions.discard(subscription)
        for key in subscription.keys:
            upstream = self._upstreams.get(key)
            if upstream is None or subscription not in upstream.subscribers:
                continue
            upstream.subscribers.discard(subscription)
            if not upstream.subscribers:
                del self._upstreams[key]
                if upstream.task is not None:
                    upstream.task.cancel()

    async def _pump(self, upstream: _Upstream[K, T]) -> None:
        failures = 0
        while True:
            feed = self._opener(upstream.key)
            recovering = failures > 0
            try:
                async for item in feed:
                    if isinstance(item, FeedInterrupted):
                        # The feed lost data but keeps going (it resyncs itself).
                        recovering = True
                        upstream.last, upstream.has_last = None, False
                        log.warning("feed %s interrupted (%s)", upstream.key, item.reason)
                        message = f"feed interrupted: {item.reason}"
                        self._broadcast(upstream, Notice(NoticeKind.GAP, message))
                        continue
                    if isinstance(item, FeedRecovered):
                        if recovering:
                            recovering, failures = False, 0
                            self._broadcast(
                                upstream, Notice(NoticeKind.RECOVERED, "feed recovered")
                            )
                        continue
                    if recovering:
                        recovering, failures = False, 0
                        self._broadcast(upstream, Notice(NoticeKind.RECOVERED, "feed recovered"))
                    upstream.last, upstream.has_last = item, True
                    for subscription in list(upstream.subscribers):
                        subscription._offer(upstream.key, item)
                raise ConnectionError("upstream feed ended")
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any upstream failure: tell subscribers, reopen
                failures += 1
                upstream.last, upstream.has_last = None, False  # stale after a gap
                reason = getattr(error, "message", "") or type(error).__name__
                log.warning("feed %s failed (%s); reopening", upstream.key, reason)
                self._broadcast(upstream, Notice(NoticeKind.GAP, f"feed interrupted: {reason}"))
                ceiling = min(self._max_backoff, self._base_backoff * 2 ** (failures - 1))
                await asyncio.sleep(self._rng.uniform(ceiling / 2, ceiling))
            finally:
                aclose = getattr(feed, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()

    def _broadcast(self, upstream: _Upstream[K, T], notice: Notice) -> None:
        if self._on_notice is not None:
            self._on_notice(upstream.key, notice)
        for subscription in list(upstream.subscribers):
            subscription._notify(upstream.key, notice)

    async def close(self) -> None:
        tasks = [u.task for u in self._upstreams.values() if u.task is not None]
        self._upstreams.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
