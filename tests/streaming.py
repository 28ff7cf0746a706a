"""Helpers for the live-stream tests: random book changes that never cross, and readers
that follow a gRPC stream until it shows an expected state."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from decimal import Decimal as D
from typing import Any

from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

Level = tuple[D, D]


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
