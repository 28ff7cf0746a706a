"""Helpers for the live-stream tests: random book changes that never cross, and readers
that follow a gRPC stream until it shows an expected state."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal as D
from typing import Any

import grpc

from tests.conftest import make_settings
from tests.fakes.ws import FakeFeedServer, Level
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway, start_gateway


def random_changes(
    rng: random.Random, mid: D, tick: D, width: int = 40
) -> tuple[list[Level], list[Level]]:
    """A few absolute level sizes on each side of ``mid`` (bids below, asks above), some of
    them 0 (removals), so the true book moves but can never cross."""
    bids, asks = [], []
    for _ in range(rng.randint(1, 4)):
        offset = tick * rng.randint(1, width)
        size = D(rng.choice([0, 0, 1, 2, 5, 13])) / 4
        if rng.random() < 0.5:
            bids.append((mid - offset, size))
        else:
            asks.append((mid + offset, size))
    return _dedupe(bids), _dedupe(asks)


def _dedupe(levels: list[Level]) -> list[Level]:
    return list({price: (price, size) for price, size in levels}.values())


def levels(rows: Any) -> list[Level]:
    return [(D(row.price), D(row.quantity)) for row in rows]


async def read_until(
    call: Any, accept: Callable[[Any], bool], notices: list[int], limit_seconds: float = 10.0
) -> Any:
    """Read ``call`` until ``accept(message)``; notices seen on the way go to ``notices``."""
    async with asyncio.timeout(limit_seconds):
        while True:
            message = await call.read()
            if message.HasField("notice"):
                notices.append(message.notice.kind)
                continue
            if accept(message):
                return message


def book_is(bids: list[Level], asks: list[Level]) -> Callable[[pb.StreamOrderBookResponse], bool]:
    def accept(message: pb.StreamOrderBookResponse) -> bool:
        return levels(message.book.bids) == bids and levels(message.book.asks) == asks

    return accept


@dataclass
class LiveVenue:
    """One real-mode venue adapter behind a gateway, fed by a fake REST + WebSocket venue.

    The scenario tests run the same steps against each venue through this surface."""

    name: str
    symbol: str  # canonical, as gRPC callers write it
    venue_symbol: str
    mid: D
    tick: D
    server: FakeFeedServer
    book_topic: str
    quote_topic: str
    change_book: Callable[[list[Level], list[Level]], Awaitable[None]]
    true_book: Callable[[int], tuple[list[Level], list[Level]]]
    publish_quote: Callable[[D], Awaitable[None]]
    # How many times the venue handed out a full book (REST snapshots, or in-band
    # snapshots for a venue that sends them on subscribe).
    snapshots: Callable[[], int]
    gateway: Gateway
    stub: pb_grpc.ExchangeServiceStub
    fake: Any  # the venue's streams fake, for venue-specific checks

    async def subscribed(self, topic: str, count: int = 1) -> None:
        await self.server.wait_until(lambda: self.server.subscribers(topic) == count)

    async def churn(self, rng: random.Random, updates: int) -> None:
        for _ in range(updates):
            await self.change_book(*random_changes(rng, self.mid, self.tick))


@asynccontextmanager
async def serving(backend: ExchangeBackend) -> AsyncIterator[tuple[Gateway, Any]]:
    gateway = await start_gateway(
        make_settings(use_real_exchanges=True), backends={backend.name: backend}
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}")
    try:
        yield gateway, pb_grpc.ExchangeServiceStub(channel)
    finally:
        await channel.close()
        await gateway.stop(grace=0.5)
