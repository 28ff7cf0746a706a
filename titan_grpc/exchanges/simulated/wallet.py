"""A simulated venue's account: free and locked balances per asset, and the ledger of
every movement (deposits, trades, fees), newest last."""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal

from titan_grpc.domain import ZERO, Balance, LedgerEntry, LedgerEntryType


class Wallet:
    def __init__(self, prefix: str, initial_balances: dict[str, Decimal], now: datetime) -> None:
        self._free: dict[str, Decimal] = dict(initial_balances)
        self._locked: dict[str, Decimal] = {}
        self.entries: list[LedgerEntry] = []  # append-only, oldest first
        self._moved: set[str] = set()  # assets changed since take_moved()
        self._ids = (f"{prefix}-L{n:010d}" for n in itertools.count(1))
        for asset, amount in sorted(initial_balances.items()):
            self.entries.append(
                LedgerEntry(
                    next(self._ids), asset, amount, amount, LedgerEntryType.DEPOSIT, "", now
                )
            )

    def balance(self, asset: str) -> Balance:
        return Balance(asset, self._free.get(asset, ZERO), self._locked.get(asset, ZERO))

    def balances(self) -> list[Balance]:
        return [self.balance(asset) for asset in sorted(set(self._free) | set(self._locked))]

    def free(self, asset: str) -> Decimal:
        return self._free.get(asset, ZERO)

    def lock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` from free to locked (a resting order's funds)."""
        self._free[asset] = self._free.get(asset, ZERO) - amount
        self._locked[asset] = self._locked.get(asset, ZERO) + amount
        self._moved.add(asset)

    def unlock(self, asset: str, amount: Decimal) -> None:
        self._locked[asset] -= amount
        self._free[asset] = self._free.get(asset, ZERO) + amount
        self._moved.add(asset)

    def adjust(
        self, asset: str, amount: Decimal, kind: LedgerEntryType, reference: str, now: datetime
    ) -> None:
        """Add ``amount`` (negative: take it) to the free balance, with a ledger entry."""
        self._free[asset] = self._free.get(asset, ZERO) + amount
        self._moved.add(asset)
        total = self._free[asset] + self._locked.get(asset, ZERO)
        self.entries.append(
            LedgerEntry(next(self._ids), asset, amount, total, kind, reference, now)
        )

    def take_moved(self) -> tuple[Balance, ...]:
        """The balances changed since the last call, by asset."""
        moved, self._moved = self._moved, set()
        return tuple(self.balance(asset) for asset in sorted(moved))
