"""Binance spot REST: roots, endpoints with their request weights, limits and error codes.

Weights follow the venue's REST docs (EXCHANGES-REFERENCE.md, section 1.3).
"""

from __future__ import annotations

from dataclasses import dataclass

LIVE_REST_URL = "https://api.binance.com"
TESTNET_REST_URL = "https://testnet.binance.vision"
LIVE_WS_URL = "wss://stream.binance.com:9443"
TESTNET_WS_URL = "wss://stream.testnet.binance.vision"

# REQUEST_WEIGHT per minute until exchangeInfo.rateLimits says otherwise (6000 today).
DEFAULT_WEIGHT_LIMIT = 6000
WEIGHT_WINDOW_SECONDS = 60.0
USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
# ORDERS: unfilled orders per 10 s per account until exchangeInfo says otherwise.
DEFAULT_ORDER_LIMIT = 50
ORDER_WINDOW_SECONDS = 10.0
ORDER_COUNT_HEADER = "X-MBX-ORDER-COUNT-10S"
DEFAULT_RECV_WINDOW_MS = 5000

# Standard spot fees, used until the account's commissionRates are known.
DEFAULT_MAKER_FEE = "0.001"
DEFAULT_TAKER_FEE = "0.001"


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    weight: int
    signed: bool = False
    idempotent: bool = True

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"


PING = Endpoint("GET", "/api/v3/ping", 1)
TIME = Endpoint("GET", "/api/v3/time", 1)
EXCHANGE_INFO = Endpoint("GET", "/api/v3/exchangeInfo", 20)
TICKER_24H = Endpoint("GET", "/api/v3/ticker/24hr", 2)
BOOK_TICKER = Endpoint("GET", "/api/v3/ticker/bookTicker", 2)
DEPTH = Endpoint("GET", "/api/v3/depth", 5)  # weight depends on limit: depth_weight()
TRADES = Endpoint("GET", "/api/v3/trades", 25)
ACCOUNT = Endpoint("GET", "/api/v3/account", 20, signed=True)
ORDER_NEW = Endpoint("POST", "/api/v3/order", 1, signed=True, idempotent=False)
ORDER_QUERY = Endpoint("GET", "/api/v3/order", 4, signed=True)
ORDER_CANCEL = Endpoint("DELETE", "/api/v3/order", 1, signed=True)
OPEN_ORDERS = Endpoint("GET", "/api/v3/openOrders", 6, signed=True)
OPEN_ORDERS_ALL_WEIGHT = 80
CANCEL_OPEN_ORDERS = Endpoint("DELETE", "/api/v3/openOrders", 1, signed=True)
MY_TRADES = Endpoint("GET", "/api/v3/myTrades", 20, signed=True)
MY_TRADES_BY_ORDER_WEIGHT = 5
MY_TRADES_MAX_LIMIT = 1000

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)


def depth_limit(depth: int) -> int:
    """The smallest limit Binance accepts that covers ``depth`` levels."""
    return next(limit for limit in DEPTH_LIMITS if limit >= depth)


def depth_weight(limit: int) -> int:
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250
