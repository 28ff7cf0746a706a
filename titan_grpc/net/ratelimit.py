"""Client-side rate limiting, so a venue never has to tell us we went too fast.

``WindowRateLimiter`` models a per-window weight budget (Binance's REQUEST_WEIGHT per
minute and ORDERS per 10 s, KuCoin's pools per 30 s): each request reserves its weight
before it is sent, the count is corrected upward from the venue's usage headers, and a
``Retry-After`` blocks the whole venue until it passes. ``TokenBucketLimiter`` models a
continuously refilled request rate (Coinbase).

Lanes: every budget is shared by reads and trading, and reads must never crowd out a
cancel. The caller's lane travels in a context variable (``budget_lane``), so adapters
need not pass it through every call: reads may use only ``1 - trading_reserve`` of a
budget, places all but a small cancel-only share, cancels all of it; a waiting cancel is
served before a waiting place, a place before a read. Reads made for the market-data
cache do not wait at all (``may_wait=False``): the cache answers from what it holds.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from titan_grpc.errors import RateLimited


class Lane(enum.IntEnum):
    """Who is spending the budget; lower values are served first."""

    CANCEL = 0
    PLACE = 1
    READ = 2


@dataclass(frozen=True, slots=True)
class BudgetContext:
    lane: Lane = Lane.READ
    may_wait: bool = True


_DEFAULT_CONTEXT = BudgetContext()
_context: ContextVar[BudgetContext] = ContextVar(
    "titan_budget_context",
    default=_DEFAULT_CONTEXT,
)


def current_budget() -> BudgetContext:
    return _context.get()


@contextmanager
def budget_lane(lane: Lane, *, may_wait: bool = True) -> Iterator[None]:
    """Spend venue budget in ``lane`` for everything awaited inside the block."""
    token = _context.set(BudgetContext(lane, may_wait))
    try:
        yield
    finally:
        _context.reset(token)


@dataclass(frozen=True, slots=True)
class LaneShares:
    """How a budget is shared: reads never use ``trading_reserve`` of it, places never
    use ``cancel_reserve`` (the last part, kept for cancels)."""

    trading_reserve: float = 0.0
    cancel_reserve: float = 0.0

    @classmethod
    def from_reserve(cls, trading_reserve: float) -> LaneShares:
        # A quarter of the trading reserve is for cancels only: a flood of placements
        # can never stop a trader from cancelling.
        return cls(trading_reserve, trading_reserve / 4)

    def ceiling(self, lane: Lane, limit: float) -> float:
        if lane is Lane.READ:
            return limit * (1 - self.trading_reserve)
        if lane is Lane.PLACE:
            return limit * (1 - self.cancel_reserve)
        return limit


class RateLimiter(Protocol):
    """What RestClient needs from a limiter."""

    async def acquire(self, weight: int) -> None: ...

    def block_for(self, seconds: float) -> None: ...

    @property
    def usage_ratio(self) -> float: ...


# Observes every grant: (venue, lane, weight), for metrics.
GrantObserver = Callable[[str, Lane, int], None]


def backoff_error(venue: str, wait: float) -> RateLimited:
    """The venue told us to stop (Retry-After): fail fast, never queue behind a ban."""
    return RateLimited(
        f"{venue}: venue asked us to back off; retry in {wait:.1f}s",
        retry_after=wait,
        exchange=venue,
    )


def lane_spent_error(venue: str, lane: Lane, wait: float) -> RateLimited:
    """A caller that may not wait found its lane spent."""
    return RateLimited(
        f"{venue}: {lane.name.lower()} budget spent; retry in {wait:.1f}s",
        retry_after=wait,
        exchange=venue,
    )


def exhausted_error(venue: str, wait: float) -> RateLimited:
    """The wait for budget would be longer than a caller may wait."""
    return RateLimited(
        f"{venue}: local rate budget exhausted; retry in {wait:.1f}s",
        retry_after=wait,
        exchange=venue,
    )


def too_heavy_error(venue: str, lane: Lane, weight: int, ceiling: float) -> RateLimited:
    return RateLimited(
        f"{venue}: request weight {weight} exceeds the {lane.name.lower()} lane's whole "
        f"budget {math.floor(ceiling)}",
        exchange=venue,
    )


class _Waiters:
    """Counts waiting callers per lane so a woken reader steps aside for a waiting cancel."""

    def __init__(self) -> None:
        self._waiting = [0, 0, 0]

    @contextmanager
    def waiting(self, lane: Lane) -> Iterator[None]:
        self._waiting[lane] += 1
        try:
            yield
        finally:
            self._waiting[lane] -= 1

    def ahead_of(self, lane: Lane) -> bool:
        return any(self._waiting[higher] for higher in range(lane))


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
        shares: LaneShares = LaneShares(),
        on_grant: GrantObserver | None = None,
        split: int = 1,
    ) -> None:
        self.venue = venue
        # With ``split`` processes sharing the venue budget and no shared store, each
        # keeps 1/split of every venue figure (limits and usage headers alike).
        self._split = split
        self.limit = max(1, limit // split)
        self.window_seconds = window_seconds
        self.max_wait_seconds = max_wait_seconds
        self.shares = shares
        self._on_grant = on_grant
        self._clock = clock
        self._sleep = sleep
        self._window_end = self._aligned_end(clock())
        self._used = 0
        # Weight the venue still counts from its previous window: our window may roll
        # before the venue's does (clock offset), so until a header shows the venue
        # rolled too, we do not spend past what its last usage header left.
        self._carry = 0
        self._last_header = 0
        self._header_window_end = self._window_end
        self._blocked_until = 0.0
        self._waiters = _Waiters()

    @property
    def used(self) -> int:
        self._roll(self._clock())
        return self._used + self._carry

    def _aligned_end(self, now: float) -> float:
        # Venues count in windows aligned to wall-clock boundaries (e.g. each minute),
        # unless they tell us otherwise (observe_reset).
        return (math.floor(now / self.window_seconds) + 1) * self.window_seconds

    def _roll(self, now: float) -> None:
        if now < self._window_end:
            return
        next_window = now < self._window_end + self.window_seconds
        seen_last_window = self._header_window_end == self._window_end
        self._carry = self._last_header if next_window and seen_last_window else 0
        self._window_end = self._aligned_end(now)
        self._used = 0

    def set_limit(self, limit: int) -> None:
        """The venue-wide limit (e.g. from exchangeInfo)."""
        self.limit = max(1, limit // self._split)

    async def acquire(self, weight: int) -> None:
        """Reserve ``weight`` in the caller's lane, waiting for the next window if
        allowed and needed. Raises RateLimited instead of waiting past max_wait_seconds
        (at once for callers that may not wait)."""
        context = _context.get()
        ceiling = self.shares.ceiling(context.lane, self.limit)
        if weight > ceiling:
            raise too_heavy_error(self.venue, context.lane, weight, ceiling)
        with self._waiters.waiting(context.lane):
            while True:
                now = self._clock()
                if now < self._blocked_until:
                    raise backoff_error(self.venue, self._blocked_until - now)
                self._roll(now)
                fits = self._used + self._carry + weight <= ceiling
                if fits and not self._waiters.ahead_of(context.lane):
                    self._used += weight
                    if self._on_grant is not None:
                        self._on_grant(self.venue, context.lane, weight)
                    return
                wait = self._window_end - now if not fits else 0.0
                if not context.may_wait and not fits:
                    raise lane_spent_error(self.venue, context.lane, wait)
                if wait > self.max_wait_seconds:
                    raise exhausted_error(self.venue, wait)
                # Fits but a higher lane waits: let it go first (sleep(0) yields once).
                await self._sleep(max(wait, 0.001) if not fits else 0)

    def observe_used(self, used: int) -> None:
        """Correct the count from the venue's own figure (e.g. X-MBX-USED-WEIGHT-1M)."""
        used //= self._split
        self._roll(self._clock())
        if self._carry and used < self._carry:
            self._carry = 0  # the venue rolled its window too
        elif self._carry:
            # Still the venue's previous window: its figure includes what we sent since.
            self._carry = max(0, used - self._used)
        self._used = max(self._used, used - self._carry)
        self._last_header, self._header_window_end = used, self._window_end

    def observe_reset(self, seconds: float) -> None:
        """The venue says its window ends in ``seconds`` (KuCoin's gw-ratelimit-reset):
        keep our count until then rather than roll at our own boundary."""
        if 0 < seconds <= self.window_seconds:
            self._roll(self._clock())
            self._window_end = self._header_window_end = self._clock() + seconds

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
    Reads draw from their own bucket too, refilled at ``1 - trading_reserve`` of the rate,
    and may not take the shared bucket below the trading reserve; places may not take it
    below the cancel reserve.
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
        shares: LaneShares = LaneShares(),
        on_grant: GrantObserver | None = None,
    ) -> None:
        self.venue = venue
        self.rate = rate_per_second
        self.burst = burst
        self.max_wait_seconds = max_wait_seconds
        self.shares = shares
        self._on_grant = on_grant
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._read_rate = rate_per_second * (1 - shares.trading_reserve)
        self._read_burst = burst * (1 - shares.trading_reserve)
        self._read_tokens = self._read_burst
        self._stamp = clock()
        self._blocked_until = 0.0
        self._waiters = _Waiters()

    def _refill(self, now: float) -> None:
        elapsed = now - self._stamp
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._read_tokens = min(self._read_burst, self._read_tokens + elapsed * self._read_rate)
        self._stamp = now

    def _shortfall(self, lane: Lane, weight: int) -> float:
        """Seconds until ``weight`` fits in ``lane`` (0 when it fits now)."""
        floor = self.burst - self.shares.ceiling(lane, self.burst)
        needed = (weight + floor - self._tokens) / self.rate
        if lane is Lane.READ:
            needed = max(needed, (weight - self._read_tokens) / max(self._read_rate, 1e-9))
        return max(needed, 0.0)

    async def acquire(self, weight: int = 1) -> None:
        context = _context.get()
        with self._waiters.waiting(context.lane):
            while True:
                now = self._clock()
                if now < self._blocked_until:
                    raise backoff_error(self.venue, self._blocked_until - now)
                self._refill(now)
                wait = self._shortfall(context.lane, weight)
                if wait == 0 and not self._waiters.ahead_of(context.lane):
                    self._tokens -= weight
                    if context.lane is Lane.READ:
                        self._read_tokens -= weight
                    if self._on_grant is not None:
                        self._on_grant(self.venue, context.lane, weight)
                    return
                if wait > 0 and not context.may_wait:
                    raise lane_spent_error(self.venue, context.lane, wait)
                if wait > self.max_wait_seconds:
                    raise exhausted_error(self.venue, wait)
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


class WindowBudget(RateLimiter, Protocol):
    """A per-window weight budget an adapter corrects from the venue's headers."""

    def set_limit(self, limit: int) -> None: ...

    def observe_used(self, used: int) -> None: ...

    def observe_reset(self, seconds: float) -> None: ...


class BudgetFactory(Protocol):
    """Builds a venue's limiters. ``pool`` names one of the venue's budgets ("weight",
    "orders", "public", "private"). In-process (``Budgets``) by default; a shared store
    (titan_grpc/stores) keeps them for every process and host using the same API key."""

    def window(
        self,
        venue: str,
        pool: str,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        max_wait_seconds: float = 10.0,
    ) -> WindowBudget: ...

    def bucket(
        self,
        venue: str,
        pool: str,
        rate_per_second: float,
        burst: int,
        *,
        max_wait_seconds: float = 10.0,
    ) -> RateLimiter: ...

    async def close(self) -> None:
        """Release what the budgets hold (a store's connection)."""


@dataclass(frozen=True, slots=True)
class Budgets:
    """In-process limiters with lane shares; with ``split`` processes sharing an account
    and no shared store, each process gets ``1/split`` of every budget."""

    shares: LaneShares = LaneShares()
    split: int = 1
    on_grant: GrantObserver | None = None

    def window(
        self,
        venue: str,
        pool: str,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        max_wait_seconds: float = 10.0,
    ) -> WindowRateLimiter:
        return WindowRateLimiter(
            venue,
            limit,
            window_seconds,
            clock=clock,
            max_wait_seconds=max_wait_seconds,
            shares=self.shares,
            on_grant=self.on_grant,
            split=self.split,
        )

    def bucket(
        self,
        venue: str,
        pool: str,
        rate_per_second: float,
        burst: int,
        *,
        max_wait_seconds: float = 10.0,
    ) -> TokenBucketLimiter:
        return TokenBucketLimiter(
            venue,
            rate_per_second / self.split,
            max(1, burst // self.split),
            max_wait_seconds=max_wait_seconds,
            shares=self.shares,
            on_grant=self.on_grant,
        )

    async def close(self) -> None:
        return None


# One process, all of each budget, no lanes: adapters built outside the server (tests, tools).
UNSHARED = Budgets()
