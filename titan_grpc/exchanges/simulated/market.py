"""The simulated market model: a shared reference price walk and per-venue books.

Everything is Decimal and driven by seeded ``random.Random`` instances, so a given
seed and number of ticks always yields the same prices, books and trades.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from titan_grpc.domain import MONEY_CONTEXT, Market, PriceLevel, Symbol
from titan_grpc.exchanges.filters import ceil_to, floor_to

BPS = Decimal("0.0001")
PRICE_PRECISION = Decimal("0.00000001")


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """A market every simulated venue lists, with venue-independent defaults."""

    symbol: Symbol
    lot: Decimal  # book level sizes are whole multiples of this
    volume_24h: Decimal  # starting 24h base volume on a venue with volume_factor 1


# Reference prices in USDT; crosses such as ETH-BTC derive from them so that bridged
# valuations across symbols stay consistent.
REFERENCE_USDT_PRICES: dict[str, Decimal] = {
    "BTC": Decimal("43000"),
    "ETH": Decimal("2300"),
    "SOL": Decimal("100"),
    "USDT": Decimal("1"),
}

INSTRUMENTS: tuple[InstrumentSpec, ...] = (
    InstrumentSpec(Symbol("BTC", "USDT"), Decimal("0.01"), Decimal("1500")),
    InstrumentSpec(Symbol("ETH", "USDT"), Decimal("0.1"), Decimal("20000")),
    InstrumentSpec(Symbol("SOL", "USDT"), Decimal("1"), Decimal("300000")),
    InstrumentSpec(Symbol("ETH", "BTC"), Decimal("0.1"), Decimal("5000")),
)


@dataclass(frozen=True, slots=True)
class VenueProfile:
    """How one simulated venue differs from the others."""

    name: str
    venue_symbol: Callable[[Symbol], str]
    offset_bps: Decimal  # venue mid = reference * (1 + offset)
    half_spread_bps: Decimal
    level_gap_bps: Decimal
    levels: int
    maker_fee_rate: Decimal
    taker_fee_rate: Decimal
    tick_sizes: dict[Symbol, Decimal]
    step_sizes: dict[Symbol, Decimal]
    min_notional: dict[str, Decimal]  # by quote asset
    volume_factor: Decimal
    initial_balances: dict[str, Decimal]

    def markets(self) -> dict[Symbol, Market]:
        return {
            spec.symbol: Market(
                exchange=self.name,
                symbol=spec.symbol,
                venue_symbol=self.venue_symbol(spec.symbol),
                tick_size=self.tick_sizes[spec.symbol],
                step_size=self.step_sizes[spec.symbol],
                min_quantity=self.step_sizes[spec.symbol],
                max_quantity=Decimal("100000"),
                min_notional=self.min_notional[spec.symbol.quote],
                maker_fee_rate=self.maker_fee_rate,
                taker_fee_rate=self.taker_fee_rate,
            )
            for spec in INSTRUMENTS
        }


def _concat(symbol: Symbol) -> str:
    return f"{symbol.base}{symbol.quote}"


def _dashed(symbol: Symbol) -> str:
    return symbol.canonical


_BTC, _ETH, _SOL, _ETHBTC = (spec.symbol for spec in INSTRUMENTS)

VENUE_PROFILES: dict[str, VenueProfile] = {
    "binance": VenueProfile(
        name="binance",
        venue_symbol=_concat,
        offset_bps=Decimal("0"),
        half_spread_bps=Decimal("0.5"),
        level_gap_bps=Decimal("0.5"),
        levels=50,
        maker_fee_rate=Decimal("0.001"),
        taker_fee_rate=Decimal("0.001"),
        tick_sizes={
            _BTC: Decimal("0.01"),
            _ETH: Decimal("0.01"),
            _SOL: Decimal("0.01"),
            _ETHBTC: Decimal("0.00001"),
        },
        step_sizes={
            _BTC: Decimal("0.00001"),
            _ETH: Decimal("0.0001"),
            _SOL: Decimal("0.001"),
            _ETHBTC: Decimal("0.0001"),
        },
        min_notional={"USDT": Decimal("5"), "BTC": Decimal("0.0001")},
        volume_factor=Decimal("3"),
        initial_balances={
            "USDT": Decimal("100000"),
            "BTC": Decimal("1"),
            "ETH": Decimal("10"),
            "SOL": Decimal("100"),
        },
    ),
    "coinbase": VenueProfile(
        name="coinbase",
        venue_symbol=_dashed,
        offset_bps=Decimal("1.5"),
        half_spread_bps=Decimal("1"),
        level_gap_bps=Decimal("1"),
        levels=50,
        maker_fee_rate=Decimal("0.004"),
        taker_fee_rate=Decimal("0.006"),
        tick_sizes={
            _BTC: Decimal("0.01"),
            _ETH: Decimal("0.01"),
            _SOL: Decimal("0.01"),
            _ETHBTC: Decimal("0.00001"),
        },
        step_sizes={
            _BTC: Decimal("0.00000001"),
            _ETH: Decimal("0.00000001"),
            _SOL: Decimal("0.001"),
            _ETHBTC: Decimal("0.00000001"),
        },
        min_notional={"USDT": Decimal("1"), "BTC": Decimal("0.00001")},
        volume_factor=Decimal("1"),
        initial_balances={
            "USDT": Decimal("50000"),
            "BTC": Decimal("0.5"),
            "ETH": Decimal("5"),
        },
    ),
    "kucoin": VenueProfile(
        name="kucoin",
        venue_symbol=_dashed,
        offset_bps=Decimal("-1"),
        half_spread_bps=Decimal("1.5"),
        level_gap_bps=Decimal("1"),
        levels=50,
        maker_fee_rate=Decimal("0.001"),
        taker_fee_rate=Decimal("0.001"),
        tick_sizes={
            _BTC: Decimal("0.1"),
            _ETH: Decimal("0.01"),
            _SOL: Decimal("0.001"),
            _ETHBTC: Decimal("0.000001"),
        },
        step_sizes={
            _BTC: Decimal("0.00000001"),
            _ETH: Decimal("0.0000001"),
            _SOL: Decimal("0.0001"),
            _ETHBTC: Decimal("0.0000001"),
        },
        min_notional={"USDT": Decimal("0.1"), "BTC": Decimal("0.000001")},
        volume_factor=Decimal("1.5"),
        initial_balances={
            "USDT": Decimal("25000"),
            "BTC": Decimal("0.25"),
            "SOL": Decimal("50"),
            "KCS": Decimal("10"),
        },
    ),
}
# "mock" is an always-simulated venue with Binance's rules and its own state.
VENUE_PROFILES["mock"] = VenueProfile(
    **{
        **{f: getattr(VENUE_PROFILES["binance"], f) for f in VenueProfile.__dataclass_fields__},
        "name": "mock",
    }
)


class ReferenceMarket:
    """USDT reference prices per asset, moving as a seeded random walk."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"{seed}:reference")
        self.usdt_prices: dict[str, Decimal] = dict(REFERENCE_USDT_PRICES)

    def advance(self) -> None:
        for asset in sorted(self.usdt_prices):
            if asset == "USDT":
                continue
            # A step of up to +/-2.5 bps, in tenth-of-a-bp units, kept in Decimal.
            step = Decimal(self._rng.randint(-25, 25)) / Decimal(100000)
            moved = MONEY_CONTEXT.multiply(self.usdt_prices[asset], 1 + step)
            self.usdt_prices[asset] = moved.quantize(PRICE_PRECISION)

    def price(self, symbol: Symbol) -> Decimal:
        base = self.usdt_prices[symbol.base]
        quote = self.usdt_prices[symbol.quote]
        return MONEY_CONTEXT.divide(base, quote).quantize(PRICE_PRECISION)


def build_book(
    mid: Decimal,
    profile: VenueProfile,
    market: Market,
    lot: Decimal,
    rng: random.Random,
) -> tuple[list[PriceLevel], list[PriceLevel]]:
    """Synthetic market-maker liquidity around ``mid``: bids best first, asks best first."""
    tick = market.tick_size
    half_spread = MONEY_CONTEXT.multiply(mid, profile.half_spread_bps * BPS)
    best_bid = floor_to(mid - half_spread, tick)
    best_ask = ceil_to(mid + half_spread, tick)
    if best_ask <= best_bid:
        best_ask = best_bid + tick
    gap = max(tick, floor_to(MONEY_CONTEXT.multiply(mid, profile.level_gap_bps * BPS), tick))
    bids: list[PriceLevel] = []
    asks: list[PriceLevel] = []
    for level in range(profile.levels):
        bid_price = best_bid - gap * level
        if bid_price > 0:
            bids.append(PriceLevel(bid_price, lot * rng.randint(1, 40)))
        asks.append(PriceLevel(best_ask + gap * level, lot * rng.randint(1, 40)))
    return bids, asks
