"""The ccxt exchange object TITAN drives: the venue's config and sandbox, and exact
numbers (string number mode, JSON numbers and book levels read as text)."""

from __future__ import annotations

import functools
import json
from typing import Any

import ccxt.async_support as ccxt_async

from titan_grpc.errors import ConfigError
from titan_grpc.exchanges.ccxt import parse
from titan_grpc.exchanges.ccxt.settings import CcxtSettings


def _exact_bid_ask(
    exchange: Any, bidask: Any, price_key: Any = 0, amount_key: Any = 1, count_key: Any = 2
) -> list[Any]:
    """ccxt's parse_order_book_bid_ask without safe_float: the venue's text, as Decimal."""
    return [
        parse.decimal(exchange.safe_string(bidask, price_key), "book price"),
        parse.decimal(exchange.safe_string(bidask, amount_key), "book size"),
    ]


def build_exchange(settings: CcxtSettings, module: Any = ccxt_async) -> Any:
    """The ccxt instance for ``settings``: config deep-merged, sandbox applied, exact numbers."""
    cls = getattr(module, settings.exchange_id, None)
    if cls is None or settings.exchange_id not in getattr(module, "exchanges", ()):
        raise ConfigError(
            [f"TITAN_VENUES: {settings.venue}: ccxt has no exchange {settings.exchange_id!r}"]
        )
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "options": {
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            "fetchOpenOrders": {"warnWithoutSymbol": False},
        },
    }
    for key, secret in (
        ("apiKey", settings.api_key),
        ("secret", settings.secret),
        ("password", settings.password),
    ):
        if secret:
            config[key] = secret.reveal()
    config = ccxt_async.Exchange.deep_extend(config, dict(settings.options))
    exchange = cls(config)
    exchange.number = str  # ccxt's string number mode: unified numbers keep the venue's text
    # JSON numbers as strings too (ccxt's quoteJsonNumbers, which Python ccxt ignores).
    exchange.on_json_response = functools.partial(json.loads, parse_float=str)
    exchange.parse_order_book_bid_ask = functools.partial(_exact_bid_ask, exchange)
    user_urls = settings.options.get("urls")
    if settings.sandbox:
        if exchange.urls.get("test"):
            exchange.set_sandbox_mode(True)
        elif not user_urls:
            prefix = settings.prefix
            raise ConfigError(
                [
                    f"{prefix}SANDBOX: ccxt's {settings.exchange_id} has no sandbox; set "
                    f"{prefix}SANDBOX=false to use its live API (or point {prefix}OPTIONS "
                    "urls at a stand-in)"
                ]
            )
    if isinstance(user_urls, dict):  # a stand-in or proxy wins over the sandbox's URLs
        exchange.urls = exchange.deep_extend(exchange.urls, user_urls)
    return exchange
