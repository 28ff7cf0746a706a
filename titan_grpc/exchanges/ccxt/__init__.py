"""Venues reached through ccxt (optional extra ``titan-grpc[ccxt]``): ids ``ccxt:<id>``.

The factory ``create`` is registered under the entry-point group ``titan_grpc.exchanges``
as ``ccxt``; ccxt itself is imported only when such a venue is selected.
"""

from __future__ import annotations

from titan_grpc.errors import ConfigError
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.ccxt.settings import CcxtSettings, load_ccxt_settings
from titan_grpc.exchanges.plugins import VenueContext

__all__ = ["CcxtSettings", "create", "load_ccxt_settings"]


def create(context: VenueContext) -> ExchangeBackend:
    settings = load_ccxt_settings(context.name, context.env)
    try:
        from titan_grpc.exchanges.ccxt.adapter import CcxtExchange
    except ImportError as error:
        raise ConfigError(
            [
                f"TITAN_VENUES: {context.name} needs ccxt ({error.name or error}): "
                "pip install 'titan-grpc[ccxt]'"
            ]
        ) from None
    return CcxtExchange(settings, budgets=context.budgets)
