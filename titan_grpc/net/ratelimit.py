"""Client-side rate limiting, so a venue never has to tell us we went too fast.

``WindowRateLimiter`` models a per-window weight budget (Binance's REQUEST_WEIGHT per
minute, KuCoin's pools per 30 s): each request reserves its weight before it is sent,
the count is corrected upward from the venue's usage headers, and a ``Retry-After``
blocks the whole venue until it passes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from titan_grpc.errors import RateLimited


class RateLimiter(Protocol):
    """What RestClient needs from a limiter."""

    async def acquire(self, weight: int) -> None: ...

    def block_for(self, seconds: float) -> None: ...

    @property
    def usage_ratio(self) -> float: ...


class WindowRateLimiter:
    def __init__(
        self,
        venue: str,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait_seconds: float = 10.0,
    ) -> None:
        self.venue = venue
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_wait_seconds = max_wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._window = self._window_index(clock())
        self._used = 0
        self._blocked_until = 0.0

    @property
    def used(self) -> int:
        self._roll(self._clock())
        return self._used

    def _window_index(self, now: float) -> int:
        # Venues count in windows aligned to wall-clock boundaries (e.g. each minute).
        return math.floor(now / self.window_seconds)

    def _roll(self, now: float) -> None:
        index = self._window_index(now)
        if index != self._window:
            self._window = index
            self._used = 0

    def set_limit(self, limit: int) -> None:
        self.limit = limit

    async def acquire(self, weight: int) -> None:
        """Reserve ``weight`` in the budget, waiting for the next window if needed.

        Raises RateLimited without waiting when the wait would exceed max_wait_seconds.
        """
        if weight > self.limit:
            raise RateLimited(
                f"{self.venue}: request weight {weight} exceeds the whole budget {self.limit}",
                exchange=self.venue,
            )
        while True:
            now = self._clock()
            if now < self._blocked_until:
                # The venue told us to stop: fail fast, never queue behind a ban.
                wait = self._blocked_until - now
                raise RateLimited(
                    f"{self.venue}: venue asked us to back off; retry in {wait:.1f}s",
                    retry_after=wait,
                    exchange=self.venue,
                )
            self._roll(now)
            if self._used + weight <= self.limit:
                self._used += weight
                return
            wait = (self._window + 1) * self.window_seconds - now
            if wait > self.max_wait_seconds:
                raise RateLimited(
                    f"{self.venue}: local rate budget exhausted; retry in {wait:.1f}s",
                    retry_after=wait,
                    exchange=self.venue,
                )
            await self._sleep(max(wait, 0.001))

    def observe_used(self, used: int) -> None:
        """Correct the count from the venue's own figure (e.g. X-MBX-USED-WEIGHT-1M)."""
        self._roll(self._clock())
        self._used = max(self._used, used)

    def block_for(self, seconds: float) -> None:
        """Send nothing to the venue for ``seconds`` (Retry-After on 429/418)."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    @property
    def blocked_for(self) -> float:
        return max(0.0, self._blocked_until - self._clock())

    @property
    def usage_ratio(self) -> float:
        """Share of this window's budget spent (1.0 while the venue has us blocked)."""
        if self.blocked_for > 0:
            return 1.0
        return min(1.0, self.used / self.limit) if self.limit else 1.0


class TokenBucketLimiter:
    """A request-rate budget refilled continuously (Coinbase: N requests/s, burst B).

    Requests wait (up to max_wait_seconds) for a token; a venue Retry-After blocks all.
    """

    def __init__(
        self,
        venue: str,
        rate_per_second: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait_seconds: float = 10.0,
    ) -> None:
        self.venue = venue
        self.rate = rate_per_second
        self.burst = burst
        self.max_wait_seconds = max_wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._blocked_until = 0.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, weight: int = 1) -> None:
        while True:
            now = self._clock()
            if now < self._blocked_until:
                wait = self._blocked_until - now
                raise RateLimited(
                    f"{self.venue}: venue asked us to back off; retry in {wait:.1f}s",
                    retry_after=wait,
                    exchange=self.venue,
                )
            self._refill(now)
            if self._tokens >= weight:
                self._tokens -= weight
                return
            wait = (weight - self._tokens) / self.rate
            if wait > self.max_wait_seconds:
                raise RateLimited(
                    f"{self.venue}: local rate budget exhausted; retry in {wait:.1f}s",
                    retry_after=wait,
                    exchange=self.venue,
                )
            await self._sleep(wait)

    def block_for(self, seconds: float) -> None:
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    @property
    def usage_ratio(self) -> float:
        now = self._clock()
        if now < self._blocked_until:
            return 1.0
        self._refill(now)
        return 1.0 - self._tokens / self.burst
