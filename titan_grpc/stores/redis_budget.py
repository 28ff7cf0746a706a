"""Venue budgets shared by every process and host using the same API key, in Redis.

The in-process limiters (net/ratelimit.py) give each process its own count; here the count
lives in Redis and every grant is one atomic server-side script, so N processes on M hosts
together never spend more than the venue allows. The scripts read the time from Redis
(``TIME``), so every process agrees on where a window starts and ends whatever its own
clock says; usage headers and Retry-After are written back for all.

Keys are per venue, API key (a hash of it: the key itself is never stored) and pool, with
one hash tag so each budget's keys share a cluster slot.

Lanes work as in process: a read may spend only ``1 - trading_reserve`` of a budget, a
placement all but the cancel-only share, a cancel all of it. Waiting callers are ordered
within their process only; across processes the lane ceilings keep the trading share.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from titan_grpc.errors import RateLimited, StoreUnavailable
from titan_grpc.net.ratelimit import (
    GrantObserver,
    Lane,
    LaneShares,
    RateLimiter,
    WindowBudget,
    backoff_error,
    current_budget,
    exhausted_error,
    lane_spent_error,
    too_heavy_error,
)
from titan_grpc.stores.redis_client import Redis, RedisScript, open_redis

log = logging.getLogger(__name__)

# KEYS: count prefix, blocked-until, last header, carry prefix
# ARGV: weight, ceiling, window seconds
# -> {granted (1/0), seconds to wait, weight counted in the window}
_WINDOW_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local weight, ceiling, span = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < blocked then return {0, tostring(blocked - now), '-1'} end
local window = math.floor(now / span)
local count_key = KEYS[1] .. window
local carry_key = KEYS[4] .. window
local used = tonumber(redis.call('GET', count_key) or '0')
local carry = redis.call('GET', carry_key)
if not carry then
  -- A new window: until a header shows the venue rolled too, keep what its last header
  -- (from the previous window) said it had counted.
  carry = 0
  local header = redis.call('HMGET', KEYS[3], 'used', 'window')
  if header[1] and tonumber(header[2]) == window - 1 then carry = tonumber(header[1]) end
  redis.call('SET', carry_key, carry, 'PX', math.floor(span * 2000))
end
carry = tonumber(carry)
if used + carry + weight <= ceiling then
  redis.call('INCRBY', count_key, weight)
  redis.call('PEXPIRE', count_key, math.floor(span * 2000))
  return {1, '0', tostring(used + carry + weight)}
end
return {0, tostring((window + 1) * span - now), tostring(used + carry)}
"""

# KEYS: count prefix, last header, carry prefix; ARGV: venue's figure, window seconds
_WINDOW_OBSERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local seen, span = tonumber(ARGV[1]), tonumber(ARGV[2])
local window = math.floor(now / span)
local count_key = KEYS[1] .. window
local carry_key = KEYS[3] .. window
local used = tonumber(redis.call('GET', count_key) or '0')
local carry = tonumber(redis.call('GET', carry_key) or '0')
if carry > 0 and seen < carry then
  carry = 0
elseif carry > 0 then
  carry = math.max(0, seen - used)
end
redis.call('SET', carry_key, carry, 'PX', math.floor(span * 2000))
if seen - carry > used then
  redis.call('SET', count_key, seen - carry, 'PX', math.floor(span * 2000))
end
redis.call('HSET', KEYS[2], 'used', seen, 'window', window)
redis.call('PEXPIRE', KEYS[2], math.floor(span * 4000))
return tostring(math.max(used, seen - carry) + carry)
"""

# KEYS: blocked-until; ARGV: seconds
_BLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local until_ = now + tonumber(ARGV[1])
local blocked = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > blocked then
  redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""

# KEYS: bucket hash, blocked-until
# ARGV: weight, rate, burst, floor (tokens the lane must leave), read rate, read burst,
#       is read (1/0)
# -> {granted, seconds to wait, tokens left}
_BUCKET_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local weight, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local floor, read_rate, read_burst = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local is_read = ARGV[7] == '1'
local blocked = tonumber(redis.call('GET', KEYS[2]) or '0')
if now < blocked then return {0, tostring(blocked - now), '0'} end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'read', 'stamp')
local tokens = tonumber(state[1] or burst)
local read = tonumber(state[2] or read_burst)
local stamp = tonumber(state[3] or now)
local elapsed = math.max(0, now - stamp)
tokens = math.min(burst, tokens + elapsed * rate)
read = math.min(read_burst, read + elapsed * read_rate)
local wait = math.max(0, (weight + floor - tokens) / rate)
if is_read then wait = math.max(wait, (weight - read) / math.max(read_rate, 0.000001)) end
if wait <= 0 then
  tokens = tokens - weight
  if is_read then read = read - weight end
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'read', tostring(read),
  'stamp', tostring(now))
redis.call('PEXPIRE', KEYS[1], 600000)
if wait <= 0 then return {1, '0', tostring(tokens)} end
return {0, tostring(wait), tostring(tokens)}
"""


def account_tag(api_key: str) -> str:
    """Who shares a budget: the same API key (hashed), or every keyless caller."""
    if not api_key:
        return "public"
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class _Shared:
    """What the Redis limiters share: the client, the scripts, the background writes."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.window_acquire = RedisScript(client, _WINDOW_ACQUIRE)
        self.window_observe = RedisScript(client, _WINDOW_OBSERVE)
        self.block = RedisScript(client, _BLOCK)
        self.bucket_acquire = RedisScript(client, _BUCKET_ACQUIRE)
        self.writes: set[asyncio.Future[object]] = set()

    def write_back(self, write: Awaitable[object]) -> None:
        """Run a header correction in the background (the adapter's call is synchronous)."""
        task = asyncio.ensure_future(write)
        self.writes.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[object]) -> None:
        self.writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("shared budget update failed: %s", task.exception())


def _unavailable(venue: str, error: StoreUnavailable) -> RateLimited:
    # Without the shared count we cannot know what the venue has left: refuse rather than
    # risk a ban; the caller may retry shortly.
    return RateLimited(
        f"{venue}: shared rate budget unavailable ({error.message}); retry shortly",
        retry_after=1.0,
        exchange=venue,
    )


class RedisWindowLimiter:
    """A per-window weight budget (Binance, KuCoin) counted in Redis for all processes."""

    def __init__(
        self,
        shared: _Shared,
        venue: str,
        prefix: str,
        limit: int,
        window_seconds: float,
        *,
        shares: LaneShares,
        max_wait_seconds: float,
        on_grant: GrantObserver | None,
    ) -> None:
        self.venue = venue
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_wait_seconds = max_wait_seconds
        self.shares = shares
        self._shared = shared
        self._on_grant = on_grant
        self._keys = (
            f"{prefix}:count:",
            f"{prefix}:blocked",
            f"{prefix}:header",
            f"{prefix}:carry:",
        )
        self._used = 0
        self._blocked_until = 0.0

    async def acquire(self, weight: int) -> None:
        context = current_budget()
        ceiling = int(self.shares.ceiling(context.lane, self.limit))
        if weight > ceiling:
            raise too_heavy_error(self.venue, context.lane, weight, ceiling)
        while True:
            try:
                granted, wait_text, used_text = await self._shared.window_acquire(
                    self._keys, (weight, ceiling, self.window_seconds)
                )
            except StoreUnavailable as error:
                raise _unavailable(self.venue, error) from None
            wait = float(wait_text)
            if int(used_text) >= 0:
                self._used = int(used_text)
            if int(granted):
                if self._on_grant is not None:
                    self._on_grant(self.venue, context.lane, weight)
                return
            if int(used_text) < 0:
                self._blocked_until = time.monotonic() + wait
                raise backoff_error(self.venue, wait)
            if not context.may_wait:
                raise lane_spent_error(self.venue, context.lane, wait)
            if wait > self.max_wait_seconds:
                raise exhausted_error(self.venue, wait)
            await asyncio.sleep(max(wait, 0.001))

    def set_limit(self, limit: int) -> None:
        self.limit = limit

    def observe_used(self, used: int) -> None:
        keys = (self._keys[0], self._keys[2], self._keys[3])
        self._shared.write_back(self._shared.window_observe(keys, (used, self.window_seconds)))

    def observe_reset(self, seconds: float) -> None:
        # Windows follow Redis's clock, aligned to the window length for every process; a
        # venue whose windows start with the first request (KuCoin) is still never
        # over-spent, since each of its windows lies within two of ours counted in full.
        return None

    def block_for(self, seconds: float) -> None:
        self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)
        self._shared.write_back(self._shared.block((self._keys[1],), (seconds,)))

    @property
    def usage_ratio(self) -> float:
        if time.monotonic() < self._blocked_until:
            return 1.0
        return min(1.0, self._used / self.limit) if self.limit else 1.0


class RedisBucketLimiter:
    """A continuously refilled request rate (Coinbase) kept in Redis for all processes."""

    def __init__(
        self,
        shared: _Shared,
        venue: str,
        prefix: str,
        rate_per_second: float,
        burst: int,
        *,
        shares: LaneShares,
        max_wait_seconds: float,
        on_grant: GrantObserver | None,
    ) -> None:
        self.venue = venue
        self.rate = rate_per_second
        self.burst = burst
        self.max_wait_seconds = max_wait_seconds
        self.shares = shares
        self._shared = shared
        self._on_grant = on_grant
        self._keys = (f"{prefix}:bucket", f"{prefix}:blocked")
        self._tokens = float(burst)
        self._blocked_until = 0.0

    async def acquire(self, weight: int = 1) -> None:
        context = current_budget()
        floor = self.burst - self.shares.ceiling(context.lane, self.burst)
        read_share = 1 - self.shares.trading_reserve
        is_read = context.lane is Lane.READ
        while True:
            try:
                granted, wait_text, tokens_text = await self._shared.bucket_acquire(
                    self._keys,
                    (
                        weight,
                        self.rate,
                        self.burst,
                        floor,
                        self.rate * read_share,
                        self.burst * read_share,
                        1 if is_read else 0,
                    ),
                )
            except StoreUnavailable as error:
                raise _unavailable(self.venue, error) from None
            self._tokens = float(tokens_text)
            wait = float(wait_text)
            if int(granted):
                if self._on_grant is not None:
                    self._on_grant(self.venue, context.lane, weight)
                return
            if not context.may_wait:
                raise lane_spent_error(self.venue, context.lane, wait)
            if wait > self.max_wait_seconds:
                raise exhausted_error(self.venue, wait)
            await asyncio.sleep(wait)

    def block_for(self, seconds: float) -> None:
        self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)
        self._shared.write_back(self._shared.block((self._keys[1],), (seconds,)))

    @property
    def usage_ratio(self) -> float:
        if time.monotonic() < self._blocked_until:
            return 1.0
        return max(0.0, min(1.0, 1.0 - self._tokens / self.burst))


@dataclass
class RedisBudgets:
    """The BudgetFactory whose budgets live in Redis, per venue API key and pool."""

    client: Redis
    shares: LaneShares = field(default_factory=LaneShares)
    on_grant: GrantObserver | None = None
    accounts: dict[str, str] = field(default_factory=dict)  # venue -> account_tag(api key)
    namespace: str = "titan"

    def __post_init__(self) -> None:
        self._shared = _Shared(self.client)

    async def settle(self) -> None:
        """Wait for the header corrections and Retry-After blocks still being written."""
        await asyncio.gather(*list(self._shared.writes), return_exceptions=True)

    async def close(self) -> None:
        await self.settle()
        await self.client.aclose()

    def _prefix(self, venue: str, pool: str) -> str:
        account = self.accounts.get(venue, "public")
        return f"{self.namespace}:{{budget:{venue}:{account}:{pool}}}"

    def window(
        self,
        venue: str,
        pool: str,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        max_wait_seconds: float = 10.0,
    ) -> WindowBudget:
        return RedisWindowLimiter(
            self._shared,
            venue,
            self._prefix(venue, pool),
            limit,
            window_seconds,
            shares=self.shares,
            max_wait_seconds=max_wait_seconds,
            on_grant=self.on_grant,
        )

    def bucket(
        self,
        venue: str,
        pool: str,
        rate_per_second: float,
        burst: int,
        *,
        max_wait_seconds: float = 10.0,
    ) -> RateLimiter:
        return RedisBucketLimiter(
            self._shared,
            venue,
            self._prefix(venue, pool),
            rate_per_second,
            burst,
            shares=self.shares,
            max_wait_seconds=max_wait_seconds,
            on_grant=self.on_grant,
        )


async def open_redis_budgets(
    url: str,
    shares: LaneShares,
    *,
    api_keys: dict[str, str],
    on_grant: GrantObserver | None = None,
) -> RedisBudgets:
    """Budgets in the Redis at ``url``, per venue API key (``api_keys``: venue -> key).

    Raises StoreUnavailable when Redis does not answer."""
    client = await open_redis(url, purpose="budgets")
    accounts = {venue: account_tag(key) for venue, key in api_keys.items()}
    return RedisBudgets(client, shares, on_grant, accounts)
