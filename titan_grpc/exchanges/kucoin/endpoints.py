"""KuCoin spot REST: root, endpoints with pool weights, limits (EXCHANGES-REFERENCE.md 3.x).

Orders use the current "HF" family (/api/v1/hf/...); the ledger uses the classic path.
"""

from __future__ import annotations

from dataclasses import dataclass

LIVE_REST_URL = "https://api.kucoin.com"

# Resource pools per 30 s at VIP0: Public 2000 (per IP), Spot 4000, Management 2000.
WINDOW_SECONDS = 30.0
PUBLIC_POOL = 2000
PRIVATE_POOL = 2000  # the smaller of Spot and Management, as one budget
LIMIT_HEADER = "gw-ratelimit-limit"
REMAINING_HEADER = "gw-ratelimit-remaining"
RESET_HEADER = "gw-ratelimit-reset"  # ms until the pool's window resets

DEFAULT_MAKER_FEE = "0.001"
DEFAULT_TAKER_FEE = "0.001"
SUCCESS_CODE = "200000"
PAGE_SIZE = 50
FILLS_MAX_LIMIT = 100
LEDGER_MAX_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    weight: int
    signed: bool = False
    idempotent: bool = True

    def name(self) -> str:
        return f"{self.method} {self.path}"


TIMESTAMP = Endpoint("GET", "/api/v1/timestamp", 3)
SYMBOLS = Endpoint("GET", "/api/v2/symbols", 4)
STATS = Endpoint("GET", "/api/v1/market/stats", 15)
LEVEL1 = Endpoint("GET", "/api/v1/market/orderbook/level1", 2)
LEVEL2_20 = Endpoint("GET", "/api/v1/market/orderbook/level2_20", 2)
LEVEL2_100 = Endpoint("GET", "/api/v1/market/orderbook/level2_100", 4)
# The whole book, signed; weight 3 in the spot pool as the reference lists it (check).
FULL_BOOK = Endpoint("GET", "/api/v3/market/orderbook/level2", 3, signed=True)
HISTORIES = Endpoint("GET", "/api/v1/market/histories", 3)
# A WebSocket token + server list; a POST, but it creates nothing, so it may be retried.
BULLET_PUBLIC = Endpoint("POST", "/api/v1/bullet-public", 10)
ACCOUNTS = Endpoint("GET", "/api/v1/accounts", 5, signed=True)
LEDGERS = Endpoint("GET", "/api/v1/accounts/ledgers", 2, signed=True)
ORDER_NEW = Endpoint("POST", "/api/v1/hf/orders", 1, signed=True, idempotent=False)
ORDER_BY_ID = Endpoint("GET", "/api/v1/hf/orders/{order}", 2, signed=True)
ORDER_BY_CLIENT = Endpoint("GET", "/api/v1/hf/orders/client-order/{client}", 2, signed=True)
CANCEL_BY_ID = Endpoint("DELETE", "/api/v1/hf/orders/{order}", 1, signed=True)
CANCEL_BY_CLIENT = Endpoint("DELETE", "/api/v1/hf/orders/client-order/{client}", 1, signed=True)
ACTIVE_ORDERS = Endpoint("GET", "/api/v1/hf/orders/active", 2, signed=True)
ACTIVE_SYMBOLS = Endpoint("GET", "/api/v1/hf/orders/active/symbols", 2, signed=True)
CANCEL_BY_SYMBOL = Endpoint("DELETE", "/api/v1/hf/orders", 2, signed=True)
FILLS = Endpoint("GET", "/api/v1/hf/fills", 2, signed=True)
# The account's rates per symbol, at most TRADE_FEES_BATCH symbols a request.
TRADE_FEES = Endpoint("GET", "/api/v1/trade-fees", 3, signed=True)
TRADE_FEES_BATCH = 10
