"""The fan-out hub: shared upstreams, conflation for slow subscribers, gaps and recovery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from titan_grpc.domain import FeedInterrupted
from titan_grpc.market.hub import HubEvent, NoticeKind, StreamHub


class Feeds:
    """Upstream feeds driven by the test: push items, break the feed, count opens."""

    def __init__(self) -> None:
        self.queues: dict[str, asyncio.Queue[object]] = {}
        self.opened: list[str] = []
        self.closed: list[str] = []

    async def open(self, key: str) -> AsyncIterator[int]:
        self.opened.append(key)
        queue = self.queues.setdefault(key, asyncio.Queue())
        try:
            while True:
                item = await queue.get()
                if isinstance(item, Exception):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            self.closed.append(key)

    def push(self, key: str, item: object) -> None:
        self.queues.setdefault(key, asyncio.Queue()).put_nowait(item)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def next_event(stream: AsyncIterator[HubEvent[str, int]]) -> HubEvent[str, int]:
    return await asyncio.wait_for(anext(stream), 5)


async def test_one_upstream_per_key_shared_and_closed_after_the_last_subscriber() -> None:
    feeds = Feeds()
    hub: StreamHub[str, int] = StreamHub(feeds.open)
    first, second = hub.subscribe("BTC"), hub.subscribe("BTC")
    a, b = aiter(first), aiter(second)
    await settle()
    feeds.push("BTC", 1)
    assert (await next_event(a)).item == 1 and (await next_event(b)).item == 1
    assert feeds.opened == ["BTC"] and hub.upstream_count == 1 and hub.subscriber_count("BTC") == 2
    first.close()
    await settle()
    assert feeds.closed == []  # one subscriber left
    second.close()
    await settle()
    assert feeds.closed == ["BTC"] and hub.upstream_count == 0
    third = hub.subscribe("BTC")  # reopened on demand
    await settle()
    assert feeds.opened == ["BTC", "BTC"]
    third.close()
    await hub.close()


async def test_a_stalled_subscriber_is_conflated_and_never_delays_others() -> None:
    feeds = Feeds()
    hub: StreamHub[str, int] = StreamHub(feeds.open)
    stalled, fast = hub.subscribe("ETH"), hub.subscribe("ETH")
    fast_events = aiter(fast)
    await settle()
    for item in range(1000):
        feeds.push("ETH", item)
        assert (await next_event(fast_events)).item == item  # the fast one sees every item
    assert stalled.conflated == 999  # only the newest kept: memory stays flat
    assert (await next_event(aiter(stalled))).item == 999
    stalled.close()
    fast.close()
    await hub.close()


async def test_upstream_failure_gives_gap_then_recovered() -> None:
    feeds = Feeds()
    hub: StreamHub[str, int] = StreamHub(
        feeds.open, base_backoff_seconds=0.001, max_backoff_seconds=0.002
    )
    subscription = hub.subscribe("SOL")
    events = aiter(subscription)
    await settle()
    feeds.push("SOL", 1)
    assert (await next_event(events)).item == 1
    feeds.push("SOL", ConnectionResetError("dropped"))
    gap = await next_event(events)
    assert gap.notice is not None and gap.notice.kind is NoticeKind.GAP
    assert "ConnectionResetError" in gap.notice.message
    feeds.push("SOL", 2)  # the reopened feed delivers again
    recovered = await next_event(events)
    assert recovered.notice is not None and recovered.notice.kind is NoticeKind.RECOVERED
    assert (await next_event(events)).item == 2
    assert feeds.opened == ["SOL", "SOL"]
    subscription.close()
    await hub.close()


async def test_a_late_subscriber_gets_the_newest_item_at_once() -> None:
    feeds = Feeds()
    hub: StreamHub[str, int] = StreamHub(feeds.open)
    early = hub.subscribe("XRP")
    early_events = aiter(early)
    await settle()
    feeds.push("XRP", 7)
    assert (await next_event(early_events)).item == 7
    late = hub.subscribe("XRP")  # the feed is quiet now: the late one still starts at 7
    assert (await next_event(aiter(late))).item == 7
    early.close()
    late.close()
    await hub.close()


async def test_an_in_band_interruption_drops_unread_items_and_keeps_the_upstream() -> None:
    feeds = Feeds()
    hub: StreamHub[str, int] = StreamHub(feeds.open)  # type: ignore[arg-type]
    subscription = hub.subscribe("BTC")
    events = aiter(subscription)
    await settle()
    feeds.push("BTC", 1)
    feeds.push("BTC", FeedInterrupted("sequence gap"))
    await settle()
    # The item from before the gap was never read: it must not follow the GAP notice.
    gap = await next_event(events)
    assert gap.notice is not None and gap.notice.kind is NoticeKind.GAP
    assert "sequence gap" in gap.notice.message
    feeds.push("BTC", 2)
    recovered, item = await next_event(events), await next_event(events)
    assert recovered.notice is not None and recovered.notice.kind is NoticeKind.RECOVERED
    assert item.item == 2
    assert feeds.opened == ["BTC"]  # the feed resynced itself; nothing was reopened
    subscription.close()


async def test_one_subscription_follows_several_feeds_and_ends_on_request() -> None:
    feeds = Feeds()
    hub: StreamHub[str, int] = StreamHub(feeds.open)
    both = hub.subscribe("BTC", "ETH")
    events = aiter(both)
    await settle()
    feeds.push("BTC", 1)
    feeds.push("ETH", 2)
    feeds.push("BTC", 3)  # replaces the unread 1: latest wins per feed
    await settle()
    seen = [
        (event.key, event.item) for event in [await next_event(events), await next_event(events)]
    ]
    assert sorted(seen) == [("BTC", 3), ("ETH", 2)] and both.conflated == 1
    assert sorted(feeds.opened) == ["BTC", "ETH"]
    hub.end_all()
    with pytest.raises(StopAsyncIteration):
        await next_event(events)
    await settle()
    assert sorted(feeds.closed) == ["BTC", "ETH"] and hub.upstream_count == 0


async def test_a_gap_during_a_slow_write_still_precedes_the_next_item() -> None:
    feeds = Feeds()
    hub: StreamHub[str, int] = StreamHub(feeds.open)  # type: ignore[arg-type]
    subscription = hub.subscribe("BTC")
    events = aiter(subscription)
    await settle()
    feeds.push("BTC", 1)
    assert (await next_event(events)).item == 1  # the reader now "writes" item 1
    feeds.push("BTC", FeedInterrupted("gap"))
    feeds.push("BTC", 2)
    await settle()
    order = [await next_event(events) for _ in range(3)]
    assert [e.notice.kind if e.notice else e.item for e in order] == [
        NoticeKind.GAP,
        NoticeKind.RECOVERED,
        2,
    ]
    subscription.close()


async def test_queue_mode_delivers_every_item_and_a_laggard_gets_gap_catch_up_recovered() -> None:
    feeds = Feeds()
    hub: StreamHub[str, int] = StreamHub(feeds.open, queue_limit=5, catch_up=lambda key: [100])
    stalled, fast = hub.subscribe("acct"), hub.subscribe("acct")
    fast_events = aiter(fast)
    await settle()
    for item in range(8):
        feeds.push("acct", item)
        assert (await next_event(fast_events)).item == item  # no conflation
    events = aiter(stalled)
    got = [await next_event(events) for _ in range(5)]
    # Five queued, the sixth overflowed: the queue went, GAP, the current state, RECOVERED,
    # then what came after.
    assert got[0].notice is not None and got[0].notice.kind is NoticeKind.GAP
    assert got[1].item == 100
    assert got[2].notice is not None and got[2].notice.kind is NoticeKind.RECOVERED
    assert [e.item for e in got[3:]] == [6, 7]
    assert stalled.overflows == 1
    stalled.close()
    fast.close()
    await hub.close()
