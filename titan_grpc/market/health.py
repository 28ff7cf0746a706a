"""Venue health monitoring: periodic pings with hysteresis, and suspicion at once.

A venue turns unhealthy after ``failures_to_unhealthy`` failed checks in a row and
healthy again only after ``successes_to_healthy`` good ones, so one blip does not flap it.

A request that times out makes its venue *suspect* straight away: the read path stops
sending to it (answering from held data or failing fast) while a probe pings it with
backoff until it answers, so a hung venue costs one deadline rather than one per call
until the next periodic check.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from titan_grpc.errors import TitanError
from titan_grpc.exchanges.base import ExchangeBackend

log = logging.getLogger(__name__)

MAX_PROBE_INTERVAL_SECONDS = 8.0


@dataclass(frozen=True, slots=True)
class VenueHealth:
    exchange: str
    healthy: bool = True
    latency_seconds: float | None = None
    last_error: str = ""
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_check: datetime | None = None


class HealthMonitor:
    def __init__(
        self,
        backends: Sequence[ExchangeBackend],
        *,
        failures_to_unhealthy: int = 3,
        successes_to_healthy: int = 2,
        timeout_seconds: float = 5.0,
        on_change: Callable[[str, bool], None] = lambda name, healthy: None,
        probe_interval_seconds: float = 0.5,
    ) -> None:
        self._backends = list(backends)
        self._failures = failures_to_unhealthy
        self._successes = successes_to_healthy
        self._timeout = timeout_seconds
        self._on_change = on_change
        self._state = {b.name: VenueHealth(b.name) for b in self._backends}
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._probe_interval = probe_interval_seconds

    def is_suspect(self, exchange: str) -> bool:
        return exchange in self._probes

    def suspect(self, exchange: str, reason: str) -> None:
        """Mark ``exchange`` suspect (a request timed out) until a probe gets an answer."""
        if exchange in self._probes:
            return
        backend = next((b for b in self._backends if b.name == exchange), None)
        if backend is None:
            return
        log.warning("venue %s suspect (%s): probing until it answers", exchange, reason)
        self._probes[exchange] = asyncio.get_running_loop().create_task(self._probe(backend))

    async def _probe(self, backend: ExchangeBackend) -> None:
        delay = self._probe_interval
        try:
            while True:
                try:
                    await asyncio.wait_for(backend.ping(), self._timeout)
                    break
                except Exception:  # any failure: still suspect
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_PROBE_INTERVAL_SECONDS)
        finally:
            self._probes.pop(backend.name, None)
        log.info("venue %s answers again", backend.name)

    async def settled(self, exchange: str) -> None:
        """Return once ``exchange`` is no longer suspect (its probe got an answer)."""
        probe = self._probes.get(exchange)
        if probe is not None:
            await asyncio.shield(probe)

    async def close(self) -> None:
        probes = list(self._probes.values())
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)

    def health(self, exchange: str) -> VenueHealth:
        return self._state.get(exchange, VenueHealth(exchange))

    def is_healthy(self, exchange: str) -> bool:
        return self.health(exchange).healthy

    async def check_once(self) -> None:
        await asyncio.gather(*(self._check(backend) for backend in self._backends))

    async def run(self, interval_seconds: float) -> None:
        while True:
            await self.check_once()
            await asyncio.sleep(interval_seconds)

    async def _check(self, backend: ExchangeBackend) -> None:
        started = time.perf_counter()
        error = ""
        try:
            await asyncio.wait_for(backend.ping(), self._timeout)
        except TimeoutError:
            error = f"no answer within {self._timeout:g}s"
        except TitanError as failure:
            error = failure.message
        except Exception as failure:  # a venue bug must not stop monitoring
            error = type(failure).__name__
        self.record(backend.name, time.perf_counter() - started, error)

    def record(self, exchange: str, latency_seconds: float, error: str) -> None:
        before = self.health(exchange)
        now = datetime.now(UTC)
        if error:
            failures = before.consecutive_failures + 1
            healthy = before.healthy and failures < self._failures
            after = replace(
                before,
                healthy=healthy,
                last_error=error,
                consecutive_failures=failures,
                consecutive_successes=0,
                last_check=now,
            )
        else:
            successes = before.consecutive_successes + 1
            healthy = before.healthy or successes >= self._successes
            after = replace(
                before,
                healthy=healthy,
                latency_seconds=latency_seconds,
                consecutive_failures=0,
                consecutive_successes=successes,
                last_check=now,
            )
        self._state[exchange] = after
        if after.healthy != before.healthy:
            log.warning("venue %s is now %s", exchange, "healthy" if after.healthy else "UNHEALTHY")
            self._on_change(exchange, after.healthy)
