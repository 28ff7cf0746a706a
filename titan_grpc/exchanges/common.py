"""Pieces every real venue adapter shares: the markets cache and order reconciliation."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from titan_grpc.domain import Market, Order, Symbol
from titan_grpc.errors import AmbiguousOutcome, MalformedResponse, OrderNotFound

log = logging.getLogger(__name__)

RECONCILE_DELAYS_SECONDS = (0.2, 0.5, 1.0, 2.0)


def credential_problems(
    values: Mapping[str, str], formats: Mapping[str, tuple[re.Pattern[str], str]]
) -> list[str]:
    """Start-up checks of one venue's key variables; messages never include the values.

    ``values`` maps variable name to value: all set or none. ``formats`` maps a variable
    to the pattern it must match and a description for the message.
    """
    if not any(values.values()):
        return []
    problems = [
        f"{name}: must be set together with {', '.join(n for n in values if n != name)}"
        for name, value in values.items()
        if not value
    ]
    for name, (pattern, description) in formats.items():
        value = values.get(name, "")
        if value and not pattern.match(value):
            problems.append(f"{name}: expected {description} (got {len(value)} characters)")
    return problems


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
