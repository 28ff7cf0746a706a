"""Backoff for retrying idempotent requests (never order placement)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    base_delay_seconds: float = 0.1
    max_delay_seconds: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter for retry number ``attempt`` (0-based)."""
        ceiling = min(self.max_delay_seconds, self.base_delay_seconds * (2**attempt))
        return rng.uniform(0, ceiling)


DEFAULT_RETRY = RetryPolicy()
