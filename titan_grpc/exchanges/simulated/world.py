"""The simulated world: one reference market driving every simulated venue.

``advance()`` moves time one tick: the reference prices walk, each venue's own offset
noise walks, books are rebuilt around the new mids, resting orders the market moved
through fill, and a few synthetic public trades print. Watchers are woken.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal

from titan_grpc.domain import MONEY_CONTEXT, Side, Symbol
from titan_grpc.exchanges.simulated.engine import MatchingEngine
from titan_grpc.exchanges.simulated.market import (
    BPS,
    INSTRUMENTS,
    VENUE_PROFILES,
    ReferenceMarket,
    VenueProfile,
    build_book,
)

log = logging.getLogger(__name__)

# Venue-specific noise around the reference, in tenths of a basis point.
_MAX_NOISE = 20


def utc_now() -> datetime:
    return datetime.now(UTC)


class _VenueState:
    def __init__(self, profile: VenueProfile, seed: int, engine: MatchingEngine) -> None:
        self.profile = profile
        self.engine = engine
        self.rng = random.Random(f"{seed}:{profile.name}")
        self.noise: dict[Symbol, int] = {spec.symbol: 0 for spec in INSTRUMENTS}
        self.version = 0


class SimulatedWorld:
    def __init__(
        self,
        seed: int,
        venues: Iterable[str] = tuple(VENUE_PROFILES),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.seed = seed
        self.clock = clock
        self.tick = 0
        # Live watch_* iterators across all simulated venues (streams hold one per pair).
        self.active_watchers = 0
        self.reference = ReferenceMarket(seed)
        self._changed = asyncio.Event()
        self._venues: dict[str, _VenueState] = {}
        for name in venues:
            profile = VENUE_PROFILES[name]
            engine = MatchingEngine(
                name,
                profile.markets(),
                profile.initial_balances,
                clock,
                on_change=lambda name=name: self._mark_changed(name),  # type: ignore[misc]
            )
            self._venues[name] = _VenueState(profile, seed, engine)
        self._rebuild_books()
        for state in self._venues.values():
            self._seed_volume(state)
            self._print_trades(state)

    @property
    def venue_names(self) -> list[str]:
        return list(self._venues)

    def engine(self, venue: str) -> MatchingEngine:
        return self._venues[venue].engine

    def profile(self, venue: str) -> VenueProfile:
        return self._venues[venue].profile

    def version(self, venue: str) -> int:
        return self._venues[venue].version

    def advance(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.tick += 1
            self.reference.advance()
            for state in self._venues.values():
                for symbol in sorted(state.noise, key=str):
                    step = state.rng.randint(-3, 3)
                    state.noise[symbol] = max(
                        -_MAX_NOISE, min(_MAX_NOISE, state.noise[symbol] + step)
                    )
            self._rebuild_books()
            for state in self._venues.values():
                self._print_trades(state)
        for name in self._venues:
            self._mark_changed(name)

    def venue_mid(self, venue: str, symbol: Symbol) -> Decimal:
        state = self._venues[venue]
        reference = self.reference.price(symbol)
        offset = state.profile.offset_bps * BPS + Decimal(state.noise[symbol]) * BPS / 10
        return MONEY_CONTEXT.multiply(reference, 1 + offset)

    async def wait_for_change(self, venue: str, seen_version: int) -> int:
        """Return the venue's version once it differs from ``seen_version``."""
        while True:
            current = self._venues[venue].version
            if current != seen_version:
                return current
            event = self._changed
            await event.wait()

    async def run(self, interval_seconds: float) -> None:
        """Advance one tick per interval until cancelled."""
        while True:
            await asyncio.sleep(interval_seconds)
            self.advance()

    def _mark_changed(self, venue: str) -> None:
        self._venues[venue].version += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _rebuild_books(self) -> None:
        for state in self._venues.values():
            markets = state.engine.markets
            for spec in INSTRUMENTS:
                mid = self.venue_mid(state.profile.name, spec.symbol)
                bids, asks = build_book(
                    mid, state.profile, markets[spec.symbol], spec.lot, state.rng
                )
                state.engine.set_book(spec.symbol, bids, asks, mid)

    def _print_trades(self, state: _VenueState) -> None:
        engine = state.engine
        for spec in INSTRUMENTS:
            bids, asks, _ = engine.book(spec.symbol, 1)
            for _ in range(state.rng.randint(1, 3)):
                taker = Side.BUY if state.rng.randint(0, 1) else Side.SELL
                level = asks[0] if taker is Side.BUY else bids[0]
                quantity = spec.lot * state.rng.randint(1, 5)
                engine.record_public_trade(spec.symbol, level.price, quantity, taker)

    def _seed_volume(self, state: _VenueState) -> None:
        """Start each market with a plausible 24h volume instead of zero."""
        for spec in INSTRUMENTS:
            stats = state.engine.stats(spec.symbol)
            volume = spec.volume_24h * state.profile.volume_factor
            stats.volume += volume
            mid = self.venue_mid(state.profile.name, spec.symbol)
            stats.quote_volume += MONEY_CONTEXT.multiply(volume, mid).quantize(Decimal("0.01"))
