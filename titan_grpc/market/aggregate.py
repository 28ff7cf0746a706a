"""Consolidating tickers from several venues into one view (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from titan_grpc.domain import MONEY_CONTEXT, ZERO, Ticker

PLACES = Decimal("1e-10")
BPS_PLACES = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Best:
    exchange: str
    price: Decimal
    size: Decimal | None


@dataclass(frozen=True, slots=True)
class Consolidated:
    best_bid: Best | None
    best_ask: Best | None
    mid: Decimal | None
    spread: Decimal | None
    spread_bps: Decimal | None
    volume_weighted_last: Decimal | None
    total_volume: Decimal


def consolidate(tickers: Sequence[Ticker]) -> Consolidated:
    """Best bid (highest) and ask (lowest) across venues, ties to the larger size.

    The spread is negative when venues are crossed (an arbitrage signal, not an error).
    """
    with localcontext(MONEY_CONTEXT):
        bids = [Best(t.exchange, t.bid, t.bid_size) for t in tickers if t.bid is not None]
        asks = [Best(t.exchange, t.ask, t.ask_size) for t in tickers if t.ask is not None]
        best_bid = max(bids, key=lambda b: (b.price, b.size or ZERO), default=None)
        best_ask = min(asks, key=lambda a: (a.price, -(a.size or ZERO)), default=None)
        mid = spread = spread_bps = None
        if best_bid and best_ask:
            mid = ((best_bid.price + best_ask.price) / 2).quantize(PLACES)
            spread = best_ask.price - best_bid.price
            spread_bps = (spread / mid * 10000).quantize(BPS_PLACES) if mid else None
        weighted = [t for t in tickers if t.last is not None and t.volume_24h]
        total_volume = sum((t.volume_24h for t in tickers if t.volume_24h), ZERO)
        vw_last = None
        weight = sum((t.volume_24h for t in weighted if t.volume_24h), ZERO)
        if weight > 0:
            vw_last = (
                sum((t.last * t.volume_24h for t in weighted if t.last and t.volume_24h), ZERO)
                / weight
            ).quantize(PLACES)
        return Consolidated(best_bid, best_ask, mid, spread, spread_bps, vw_last, total_volume)
