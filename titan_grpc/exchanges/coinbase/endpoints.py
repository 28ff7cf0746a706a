"""Coinbase Exchange REST: roots, endpoints, rate limits (EXCHANGES-REFERENCE.md 2.x)."""

from __future__ import annotations

from dataclasses import dataclass

LIVE_REST_URL = "https://api.exchange.coinbase.com"
SANDBOX_REST_URL = "https://api-public.sandbox.exchange.coinbase.com"
LIVE_WS_URL = "wss://ws-feed.exchange.coinbase.com"
SANDBOX_WS_URL = "wss://ws-feed-public.sandbox.exchange.coinbase.com"

# Documented limits: public 10 requests/s per IP (burst 15), private 15/s per profile
# (burst 30). We stay a little under both.
PUBLIC_RATE, PUBLIC_BURST = 8.0, 12
PRIVATE_RATE, PRIVATE_BURST = 12.0, 24


def burst_for(rate: float, default_rate: float, default_burst: int) -> int:
    """A configured rate keeps the default's burst-to-rate proportion."""
    return max(1, round(rate * default_burst / default_rate))


# Standard taker/maker fees used for routing estimates until the account's are known.
DEFAULT_MAKER_FEE = "0.004"
DEFAULT_TAKER_FEE = "0.006"
PAGE_SIZE = 100  # the venue's default; maximum 1000
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # may hold {placeholders}
    signed: bool = False
    idempotent: bool = True

    def name(self) -> str:
        return f"{self.method} {self.path}"


TIME = Endpoint("GET", "/time")
PRODUCTS = Endpoint("GET", "/products")
TICKER = Endpoint("GET", "/products/{product}/ticker")
STATS = Endpoint("GET", "/products/{product}/stats")
BOOK = Endpoint("GET", "/products/{product}/book")
TRADES = Endpoint("GET", "/products/{product}/trades")
ACCOUNTS = Endpoint("GET", "/accounts", signed=True)
LEDGER = Endpoint("GET", "/accounts/{account}/ledger", signed=True)
ORDER_NEW = Endpoint("POST", "/orders", signed=True, idempotent=False)
ORDERS = Endpoint("GET", "/orders", signed=True)
ORDER_BY_ID = Endpoint("GET", "/orders/{order}", signed=True)
ORDER_BY_CLIENT = Endpoint("GET", "/orders/client:{client}", signed=True)
CANCEL_BY_ID = Endpoint("DELETE", "/orders/{order}", signed=True)
CANCEL_BY_CLIENT = Endpoint("DELETE", "/orders/client:{client}", signed=True)
FILLS = Endpoint("GET", "/fills", signed=True)
FEES = Endpoint("GET", "/fees", signed=True)
CANCEL_ALL = Endpoint("DELETE", "/orders", signed=True)
