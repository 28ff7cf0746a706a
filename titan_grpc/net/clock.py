"""Tracking the offset between our clock and a venue's, for signed timestamps."""

from __future__ import annotations

import time
from collections.abc import Callable


class ClockSync:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.offset_ms = 0
        self.synced = False

    def local_ms(self) -> int:
        return int(self._clock() * 1000)

    def now_ms(self) -> int:
        """The venue's current time in milliseconds, as best we know it."""
        return self.local_ms() + self.offset_ms

    def update(self, venue_ms: int, sent_ms: int, received_ms: int) -> None:
        """Record a server-time answer; assumes the venue stamped it mid-way."""
        self.offset_ms = venue_ms - (sent_ms + received_ms) // 2
        self.synced = True
