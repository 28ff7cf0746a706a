"""Pieces every real venue adapter shares: the markets cache and order reconciliation."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from titan_grpc.domain import Market, Order, Symbol
from titan_grpc.errors import AmbiguousOutcome, MalformedResponse, OrderNotFound

log = logging.getLogger(__name__)

RECONCILE_DELAYS_SECONDS = (0.2, 0.5, 1.0, 2.0)


class MarketCache:
    """The venue's markets, loaded once per TTL by one caller while others wait."""

    def __init__(
        self,
        load: Callable[[], Awaitable[dict[Symbol, Market]]],
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._clock = clock
        self._markets: dict[Symbol, Market] = {}
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._clock() - self._loaded_at < self._ttl

    async def get(self) -> dict[Symbol, Market]:
        if self._fresh():
            return self._markets
        async with self._lock:
            if not self._fresh():
                self._markets = await self._load()
                self._loaded_at = self._clock()
        return self._markets

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")


async def reconcile_by_client_id(
    venue: str,
    client_order_id: str,
    lookup: Callable[[], Awaitable[Order]],
    delays: Sequence[float],
    cause: Exception,
) -> Order:
    """After an ambiguous placement: ask the venue by client order id, with backoff.

    Returns the order if the venue knows it; otherwise raises AmbiguousOutcome. It never
    sends the order again.
    """
    log.warning("%s: ambiguous placement %s (%s); reconciling", venue, client_order_id, cause)
    for delay in delays:
        await asyncio.sleep(delay)
        try:
            return await lookup()
        except (OrderNotFound, AmbiguousOutcome, MalformedResponse):
            continue
        except Exception as error:  # still unreachable: keep trying within the budget
            log.warning("%s: reconciliation attempt failed: %s", venue, error)
    raise AmbiguousOutcome(
        f"{venue}: order {client_order_id} was sent but its outcome is still unknown; "
        "it was not re-sent (query it by client_order_id)",
        exchange=venue,
    )
