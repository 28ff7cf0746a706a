"""The account's maker/taker fee rates on one venue, and the markets that carry them.

Every venue starts from its published standard tier (``FeeSource.DEFAULT``). When keys
are configured the adapter fetches the account's own rates from the venue's fee endpoint
(at start-up, then periodically: ``refresh_fees``) and records them here; from then on
every ``Market`` the adapter hands out carries those rates (``FeeSource.ACCOUNT``), so
best price, routing and order checks all use one fee model. Rates may be account-wide
(Binance, Coinbase) or per symbol (KuCoin); a per-symbol rate wins.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from titan_grpc.domain import FeeSource, Market, Symbol
from titan_grpc.errors import TitanError
from titan_grpc.exchanges.base import ExchangeBackend

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeeRates:
    maker: Decimal
    taker: Decimal
    source: FeeSource


class AccountFees:
    """Default rates, the account-wide rates once known, per-symbol rates once known."""

    def __init__(self, default_maker: Decimal, default_taker: Decimal) -> None:
        self._default = FeeRates(default_maker, default_taker, FeeSource.DEFAULT)
        self._account: FeeRates | None = None
        self._by_symbol: dict[Symbol, FeeRates] = {}
        self._version = 0
        self._view: tuple[int, dict[Symbol, Market], dict[Symbol, Market]] | None = None

    @property
    def default(self) -> FeeRates:
        return self._default

    @property
    def account(self) -> FeeRates | None:
        return self._account

    def knows(self, symbol: Symbol) -> bool:
        return symbol in self._by_symbol

    def set_account(self, maker: Decimal, taker: Decimal) -> None:
        rates = FeeRates(maker, taker, FeeSource.ACCOUNT)
        if rates != self._account:
            self._account = rates
            self._version += 1

    def set_symbol(self, symbol: Symbol, maker: Decimal, taker: Decimal) -> None:
        rates = FeeRates(maker, taker, FeeSource.ACCOUNT)
        if self._by_symbol.get(symbol) != rates:
            self._by_symbol[symbol] = rates
            self._version += 1

    def rates(self, symbol: Symbol) -> FeeRates:
        return self._by_symbol.get(symbol) or self._account or self._default

    def apply(self, markets: dict[Symbol, Market]) -> dict[Symbol, Market]:
        """``markets`` with the current rates; the result is cached until rates or
        markets change, so callers may ask on every request."""
        view = self._view
        if view is not None and view[0] == self._version and view[1] is markets:
            return view[2]
        applied = {symbol: self.with_rates(market) for symbol, market in markets.items()}
        self._view = (self._version, markets, applied)
        return applied

    def with_rates(self, market: Market) -> Market:
        rates = self.rates(market.symbol)
        if (market.maker_fee_rate, market.taker_fee_rate, market.fee_source) == (
            rates.maker,
            rates.taker,
            rates.source,
        ):
            return market
        return dataclasses.replace(
            market,
            maker_fee_rate=rates.maker,
            taker_fee_rate=rates.taker,
            fee_source=rates.source,
        )


async def refresh_venue_fees(backends: Sequence[ExchangeBackend], per_venue_seconds: float) -> None:
    """Every venue's ``refresh_fees`` concurrently; a failing venue keeps its last rates."""

    async def one(backend: ExchangeBackend) -> None:
        try:
            await asyncio.wait_for(backend.refresh_fees(), per_venue_seconds)
        except (TitanError, TimeoutError) as error:
            log.warning("%s: account fees not refreshed: %s", backend.name, error)

    await asyncio.gather(*(one(backend) for backend in backends))


async def keep_fees_fresh(
    backends: Sequence[ExchangeBackend], interval_seconds: float, per_venue_seconds: float
) -> None:
    while True:
        await asyncio.sleep(interval_seconds)
        await refresh_venue_fees(backends, per_venue_seconds)
