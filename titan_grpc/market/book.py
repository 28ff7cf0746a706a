"""A local L2 order book kept from a snapshot plus sequenced diffs (pure, no I/O).

Levels live in sorted containers, so each update is O(log n). Diffs carry a first and
last sequence number (Binance U/u, KuCoin sequenceStart/End, Coinbase sequence):

* a diff entirely at or below the book's sequence is stale and dropped;
* a diff that starts beyond ``sequence + 1`` is a gap: the book stops serving until it is
  resynced from a snapshot;
* a book that would be crossed (best bid >= best ask) or has not been updated within the
  allowed age is never served.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from decimal import Decimal

from sortedcontainers import SortedDict

from titan_grpc.domain import PriceLevel


class DiffResult(enum.Enum):
    APPLIED = "applied"
    STALE = "stale"
    GAP = "gap"


class BookUnavailable(Exception):
    """The book cannot be served now (not synced, gapped, crossed or stale)."""


class LocalBook:
    def __init__(self) -> None:
        self._bids: SortedDict = SortedDict()  # key: -price, so the best bid comes first
        self._asks: SortedDict = SortedDict()
        self.sequence: int | None = None
        self.synced = False
        self.updated_at: float | None = None

    def apply_snapshot(
        self, bids: Iterable[PriceLevel], asks: Iterable[PriceLevel], sequence: int, now: float
    ) -> None:
        self._bids = SortedDict({-level.price: level.quantity for level in bids if level.quantity})
        self._asks = SortedDict({level.price: level.quantity for level in asks if level.quantity})
        self.sequence, self.synced, self.updated_at = sequence, True, now

    def apply_diff(
        self,
        first_sequence: int,
        last_sequence: int,
        bids: Iterable[PriceLevel],
        asks: Iterable[PriceLevel],
        now: float,
    ) -> DiffResult:
        if not self.synced or self.sequence is None:
            return DiffResult.GAP
        if last_sequence <= self.sequence:
            return DiffResult.STALE
        if first_sequence > self.sequence + 1:
            self.synced = False  # missed updates: resync from a snapshot
            return DiffResult.GAP
        for level in bids:
            self._set(self._bids, -level.price, level.quantity)
        for level in asks:
            self._set(self._asks, level.price, level.quantity)
        self.sequence, self.updated_at = last_sequence, now
        return DiffResult.APPLIED

    @staticmethod
    def _set(side: SortedDict, key: Decimal, quantity: Decimal) -> None:
        if quantity == 0:
            side.pop(key, None)  # quantity 0 removes the level
        else:
            side[key] = quantity

    def levels(
        self, depth: int, now: float, max_age_seconds: float
    ) -> tuple[tuple[PriceLevel, ...], tuple[PriceLevel, ...]]:
        """The top ``depth`` levels per side; raises BookUnavailable rather than serve a
        book that is unsynced, crossed or older than ``max_age_seconds``."""
        if not self.synced or self.updated_at is None:
            raise BookUnavailable("book not synced")
        if now - self.updated_at > max_age_seconds:
            raise BookUnavailable(f"book stale for {now - self.updated_at:.1f}s")
        bids = tuple(PriceLevel(-price, qty) for price, qty in self._bids.items()[:depth])
        asks = tuple(PriceLevel(price, qty) for price, qty in self._asks.items()[:depth])
        if bids and asks and bids[0].price >= asks[0].price:
            self.synced = False
            raise BookUnavailable("book crossed")
        return bids, asks
