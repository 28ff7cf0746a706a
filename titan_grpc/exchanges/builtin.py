"""The factories of the venues TITAN ships, registered as entry points like any plugin
(``pyproject.toml``, group ``titan_grpc.exchanges``). Built-in venues take their typed,
already validated settings from ``context.settings``."""

from __future__ import annotations

from titan_grpc.errors import ConfigError
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.binance import BinanceExchange
from titan_grpc.exchanges.coinbase import CoinbaseExchange
from titan_grpc.exchanges.kucoin import KucoinExchange
from titan_grpc.exchanges.plugins import VenueContext
from titan_grpc.exchanges.simulated import SimulatedExchange


def binance(context: VenueContext) -> ExchangeBackend:
    return BinanceExchange(
        context.settings.binance,
        request_observer=context.request_observer,
        budgets=context.budgets,
    )


def coinbase(context: VenueContext) -> ExchangeBackend:
    return CoinbaseExchange(
        context.settings.coinbase,
        quote_aliases=context.settings.quote_aliases,
        request_observer=context.request_observer,
        budgets=context.budgets,
    )


def kucoin(context: VenueContext) -> ExchangeBackend:
    return KucoinExchange(
        context.settings.kucoin,
        request_observer=context.request_observer,
        budgets=context.budgets,
    )


def simulated(context: VenueContext) -> ExchangeBackend:
    """Any venue the simulated world models (``NAME=simulated``, and "mock")."""
    if context.world is None or context.name not in context.world.venue_names:
        raise ConfigError([f"the simulator has no venue {context.name!r}"])
    return SimulatedExchange(context.name, context.world)
