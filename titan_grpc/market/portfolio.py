"""Valuing balances in one quote asset through direct or bridged prices (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

from titan_grpc.domain import MONEY_CONTEXT, ZERO, Balance, Symbol, Ticker

VALUE_PLACES = Decimal("1e-8")
BRIDGE_ASSETS = ("USDT", "USDC", "USD", "BTC", "ETH")


@dataclass(frozen=True, slots=True)
class MarketPrice:
    """A price for one BASE-QUOTE market on one venue (mid of the book, else last)."""

    exchange: str
    symbol: Symbol
    price: Decimal


@dataclass(frozen=True, slots=True)
class AssetValue:
    exchange: str
    asset: str
    quantity: Decimal
    price: Decimal  # of one unit in the quote asset
    value: Decimal
    price_path: str


@dataclass(frozen=True, slots=True)
class Unpriced:
    exchange: str
    asset: str
    quantity: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class Valuation:
    quote_asset: str
    assets: tuple[AssetValue, ...]
    unpriced: tuple[Unpriced, ...]

    @property
    def total(self) -> Decimal:
        return sum((a.value for a in self.assets), ZERO)

    def by_venue(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for asset in self.assets:
            totals[asset.exchange] = totals.get(asset.exchange, ZERO) + asset.value
        return totals


def _conversions(
    prices: Sequence[MarketPrice], prefer: str
) -> dict[tuple[str, str], tuple[Decimal, str]]:
    """(from, to) -> (rate, description), the holding venue's own markets preferred."""
    rates: dict[tuple[str, str], tuple[Decimal, str]] = {}
    ordered = sorted(prices, key=lambda p: p.exchange != prefer)  # preferred venue first
    for item in ordered:
        if item.price <= 0:
            continue
        base, quote = item.symbol.base, item.symbol.quote
        label = f"{item.symbol.canonical}@{item.exchange}"
        rates.setdefault((base, quote), (item.price, label))
        rates.setdefault((quote, base), (MONEY_CONTEXT.divide(1, item.price), f"1/{label}"))
    return rates


def value_portfolio(
    balances: Mapping[str, Sequence[Balance]],
    prices: Sequence[MarketPrice],
    quote_asset: str,
) -> Valuation:
    """Value every venue's balances in ``quote_asset``: direct, else through one bridge."""
    assets: list[AssetValue] = []
    unpriced: list[Unpriced] = []
    with localcontext(MONEY_CONTEXT):
        for exchange, venue_balances in balances.items():
            rates = _conversions(prices, exchange)
            for balance in venue_balances:
                quantity = balance.total
                if quantity == 0:
                    continue
                if balance.asset == quote_asset:
                    assets.append(
                        AssetValue(
                            exchange, balance.asset, quantity, Decimal(1), quantity, quote_asset
                        )
                    )
                    continue
                found = rates.get((balance.asset, quote_asset))
                if found is None:
                    for bridge in BRIDGE_ASSETS:
                        first = rates.get((balance.asset, bridge))
                        second = rates.get((bridge, quote_asset))
                        if first and second and bridge not in (balance.asset, quote_asset):
                            found = (first[0] * second[0], f"{first[1]}*{second[1]}")
                            break
                if found is None:
                    unpriced.append(
                        Unpriced(
                            exchange,
                            balance.asset,
                            quantity,
                            f"no market prices {balance.asset} in {quote_asset}, "
                            f"directly or via {'/'.join(BRIDGE_ASSETS)}",
                        )
                    )
                    continue
                rate, path = found
                assets.append(
                    AssetValue(
                        exchange,
                        balance.asset,
                        quantity,
                        rate.quantize(VALUE_PLACES),
                        (quantity * rate).quantize(VALUE_PLACES),
                        path,
                    )
                )
    return Valuation(quote_asset, tuple(assets), tuple(unpriced))


def portfolio_symbols(assets: set[str], quote_asset: str) -> list[Symbol]:
    """Markets that could price ``assets`` in ``quote_asset`` directly or via a bridge."""
    wanted: set[Symbol] = set()
    for asset in assets - {quote_asset}:
        for other in (quote_asset, *BRIDGE_ASSETS):
            if other != asset:
                wanted.update({Symbol(asset, other), Symbol(other, asset)})
    for bridge in BRIDGE_ASSETS:
        if bridge != quote_asset:
            wanted.update({Symbol(bridge, quote_asset), Symbol(quote_asset, bridge)})
    return sorted(wanted, key=lambda s: s.canonical)


def market_price(ticker: Ticker) -> MarketPrice | None:
    """Mid of the top of book, else the last trade; None when the ticker has neither."""
    if ticker.bid is not None and ticker.ask is not None:
        price = MONEY_CONTEXT.divide(ticker.bid + ticker.ask, 2)
    elif ticker.last is not None:
        price = ticker.last
    else:
        return None
    return MarketPrice(ticker.exchange, ticker.symbol, price)
