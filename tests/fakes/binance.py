"""A local fake of the Binance spot REST API that checks requests the way Binance does.

It verifies HMAC signatures over the exact query string + body, enforces the timestamp
window, counts request weight per minute (429 with Retry-After past the budget, 418 if
the client keeps going), enforces symbol filters, keeps balances and orders, matches
orders against a fixed book, and injects faults on request.

It shares no code with TITAN's Binance adapter on purpose: the signature check here is
written from the venue's documentation, not from our signer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN
from decimal import Decimal as D
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.server import LoopbackServer

API_KEY = "fakeKey" + "k" * 57
API_SECRET = "fakeSecret" + "s" * 54
CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")

WEIGHTS = {
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/ticker/24hr"): 2,
    ("GET", "/api/v3/ticker/bookTicker"): 2,
    ("GET", "/api/v3/depth"): 5,
    ("GET", "/api/v3/trades"): 25,
    ("GET", "/api/v3/account"): 20,
    ("POST", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/openOrders"): 6,
    ("DELETE", "/api/v3/openOrders"): 1,
    ("GET", "/api/v3/myTrades"): 20,
    ("GET", "/sapi/v1/asset/tradeFee"): 1,  # ccxt's fetchTradingFees (SAPI, weight per IP)
}
SIGNED = {
    ("GET", "/sapi/v1/asset/tradeFee"),
    ("GET", "/api/v3/account"),
    ("POST", "/api/v3/order"),
    ("GET", "/api/v3/order"),
    ("DELETE", "/api/v3/order"),
    ("GET", "/api/v3/openOrders"),
    ("DELETE", "/api/v3/openOrders"),
    ("GET", "/api/v3/myTrades"),
}


@dataclass
class SymbolSpec:
    base: str
    quote: str
    tick: D
    step: D
    min_qty: D
    max_qty: D
    min_notional: D
    bids: list[list[D]]
    asks: list[list[D]]
    update_id: int = 777  # the book's last update id (the diff stream's u)


def default_symbols() -> dict[str, SymbolSpec]:
    return {
        "BTCUSDT": SymbolSpec(
            "BTC",
            "USDT",
            D("0.01"),
            D("0.00001"),
            D("0.00001"),
            D("9000"),
            D("5"),
            bids=[[D("43000.00"), D("1.5")], [D("42999.50"), D("2")], [D("42990.00"), D("5")]],
            asks=[[D("43001.00"), D("0.5")], [D("43002.00"), D("1")], [D("43010.00"), D("4")]],
        ),
        "ETHBTC": SymbolSpec(
            "ETH",
            "BTC",
            D("0.00001"),
            D("0.0001"),
            D("0.0001"),
            D("100000"),
            D("0.0001"),
            bids=[[D("0.05300"), D("10")]],
            asks=[[D("0.05310"), D("10")]],
        ),
    }


class VenueError(Exception):
    def __init__(self, http_status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message


@dataclass
class Fault:
    # "5xx", "5xx_after_accept", "timeout_after_accept", "reset_after_accept",
    # "malformed", "latency", "duplicate" (a -2010 duplicate answer, no order made)
    kind: str
    seconds: float = 0.0


@dataclass
class FakeBinance:
    api_key: str = API_KEY
    api_secret: str = API_SECRET
    weight_limit: int = 6000
    order_limit: int = 50  # ORDERS per 10 s (per account), as exchangeInfo publishes
    clock: Callable[[], float] = time.time
    clock_offset_ms: int = 0
    symbols: dict[str, SymbolSpec] = field(default_factory=default_symbols)
    balances: dict[str, list[D]] = field(
        default_factory=lambda: {
            "USDT": [D("100000"), D(0)],
            "BTC": [D("2"), D(0)],
            "ETH": [D(0), D(0)],
        }
    )
    maker_fee: D = D("0.001")
    taker_fee: D = D("0.001")

    # Consulted for every POST /api/v3/order without a queued fault (random fault mixes).
    order_fault_plan: Callable[[], Fault | None] | None = None

    def __post_init__(self) -> None:
        self.requests: Counter[tuple[str, str]] = Counter()
        self.rejections: Counter[int] = Counter()
        self.rate_limited = 0  # 429 and 418 answers sent
        self.orders: dict[int, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self.faults: dict[tuple[str, str], deque[Fault]] = {}
        self.holds: dict[tuple[str, str], asyncio.Event] = {}  # answers wait for the event
        self._order_ids = itertools.count(1000)
        self._trade_ids = itertools.count(5000)
        self._window = -1
        self._weight_used = 0
        self._order_window = -1
        self._orders_in_window = 0
        self.max_weight_seen = 0  # the highest per-minute weight the venue counted
        self._weight_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._banned_until = 0.0
        self._limited_until = 0.0
        self._server = LoopbackServer()
        self._order_waiters: list[tuple[int, asyncio.Future[None]]] = []
        # The private feed (FakeBinanceUserData) hears every user data event here.
        self.account_listeners: list[Callable[[dict[str, Any]], None]] = []
        self.url = ""

    # ---- life cycle --------------------------------------------------------------

    async def start(self) -> str:
        self.url = await self._server.start(self._middleware)
        return self.url

    async def stop(self) -> None:
        await self._server.stop()

    def inject(self, method: str, path: str, *faults: Fault) -> None:
        self.faults.setdefault((method, path), deque()).extend(faults)

    @property
    def orders_created(self) -> int:
        return len(self.orders)

    async def wait_for_orders(self, count: int) -> None:
        """Return once the venue holds at least ``count`` orders."""
        if len(self.orders) >= count:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._order_waiters.append((count, waiter))
        await waiter

    async def wait_for_weight(self, weight: int) -> None:
        """Return once the venue has counted ``weight`` within one minute."""
        if self.max_weight_seen >= weight:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._weight_waiters.append((weight, waiter))
        await waiter

    def orders_per_client_id(self) -> Counter[str]:
        return Counter(order["clientOrderId"] for order in self.orders.values())

    def now_ms(self) -> int:
        return int(self.clock() * 1000) + self.clock_offset_ms

    # ---- request pipeline --------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        key = (request.method, request.path)
        self.requests[key] += 1
        fault = self._next_fault(key)
        if fault is None and key == ("POST", "/api/v3/order") and self.order_fault_plan:
            fault = self.order_fault_plan()
        if fault and fault.kind == "latency":
            await asyncio.sleep(fault.seconds)
            fault = None
        try:
            limited = self._count_weight(key)
            if limited is None and key == ("POST", "/api/v3/order"):
                limited = self._count_order()
            if limited is not None:
                return limited
            if fault and fault.kind == "5xx":
                return web.Response(status=503, text="Service Unavailable")
            if fault and fault.kind == "malformed":
                return web.Response(status=200, text="{not json", content_type="application/json")
            body = await request.text()
            params = self._params(request, body)
            if key in SIGNED:
                self._check_signed(request, params, body)
            if fault and fault.kind == "duplicate":
                raise VenueError(400, -2010, "Duplicate order sent.")
            gate = self.holds.get(key)
            if gate is not None:
                await gate.wait()  # the test decides when this route answers
            answer = await self._route(key, params)
        except VenueError as error:
            self.rejections[error.code] += 1
            return self._json({"code": error.code, "msg": error.message}, error.http_status)
        if fault and fault.kind == "5xx_after_accept":
            return web.Response(status=502, text="Bad Gateway")
        if fault and fault.kind == "timeout_after_accept":
            await asyncio.sleep(fault.seconds)
        if fault and fault.kind == "reset_after_accept":
            assert request.transport is not None
            request.transport.abort()  # the client sees the connection drop
            raise web.HTTPInternalServerError()
        return self._json(answer, 200)

    def _next_fault(self, key: tuple[str, str]) -> Fault | None:
        queue = self.faults.get(key)
        return queue.popleft() if queue else None

    def _json(self, body: Any, status: int) -> web.Response:
        return web.Response(
            status=status,
            text=json.dumps(body),
            content_type="application/json",
            headers={
                "X-MBX-USED-WEIGHT-1M": str(self._weight_used),
                "X-MBX-ORDER-COUNT-10S": str(self._orders_in_window),
            },
        )

    def _count_order(self) -> web.Response | None:
        window = int(self.clock() // 10)
        if window != self._order_window:
            self._order_window, self._orders_in_window = window, 0
        if self._orders_in_window >= self.order_limit:
            self.rate_limited += 1
            message = (
                f"Too many new orders; current limit is {self.order_limit} orders per 10 SECOND."
            )
            return web.Response(
                status=429,
                text=json.dumps({"code": -1015, "msg": message}),
                headers={"Retry-After": "10"},
            )
        self._orders_in_window += 1
        return None

    def _count_weight(self, key: tuple[str, str]) -> web.Response | None:
        now = self.clock()
        window = int(now // 60)
        if window != self._window:
            self._window, self._weight_used = window, 0
        retry_after = str(max(1, int(60 - now % 60)))
        if now < self._banned_until or now < self._limited_until:
            # Kept sending after a 429: Binance bans the IP (HTTP 418).
            self.rate_limited += 1
            self._banned_until = max(self._banned_until, now + 120)
            return web.Response(
                status=418,
                text=json.dumps({"code": -1003, "msg": "Way too many requests; IP banned."}),
                headers={"Retry-After": "120"},
            )
        weight = WEIGHTS.get(key, 1)
        if key == ("GET", "/api/v3/depth"):
            weight = 5  # limit <= 100 in every test
        if self._weight_used + weight > self.weight_limit:
            self.rate_limited += 1
            self._limited_until = now + int(retry_after)
            return web.Response(
                status=429,
                text=json.dumps({"code": -1003, "msg": "Too much request weight used."}),
                headers={
                    "Retry-After": retry_after,
                    "X-MBX-USED-WEIGHT-1M": str(self._weight_used),
                },
            )
        self._weight_used += weight
        self.max_weight_seen = max(self.max_weight_seen, self._weight_used)
        for waiting in [w for w in self._weight_waiters if w[0] <= self.max_weight_seen]:
            self._weight_waiters.remove(waiting)
            if not waiting[1].done():
                waiting[1].set_result(None)
        return None

    def _params(self, request: web.Request, body: str) -> dict[str, str]:
        params = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        if body:
            for name, value in parse_qsl(body, keep_blank_values=True):
                params.setdefault(name, value)  # the query value wins, as on Binance
        return params

    def _check_signed(self, request: web.Request, params: dict[str, str], body: str) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise VenueError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        query = request.rel_url.raw_query_string
        signature = params.get("signature", "")
        # totalParams = query string + body, as sent, without the signature parameter.
        total = re.sub(r"&?signature=[^&]*", "", query) + re.sub(r"&?signature=[^&]*", "", body)
        expected = hmac.new(self.api_secret.encode(), total.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.lower(), expected):
            raise VenueError(400, -1022, "Signature for this request is not valid.")
        if "timestamp" not in params:
            raise VenueError(400, -1102, "Mandatory parameter 'timestamp' was not sent.")
        recv_window = int(params.get("recvWindow", "5000"))
        if recv_window > 60000:
            raise VenueError(400, -1131, "recvWindow must be less than 60000")
        timestamp, server = int(params["timestamp"]), self.now_ms()
        if timestamp >= server + 1000:
            raise VenueError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server - timestamp > recv_window:
            raise VenueError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    # ---- endpoints ---------------------------------------------------------------

    async def _route(self, key: tuple[str, str], p: dict[str, str]) -> Any:
        routes: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
            ("GET", "/api/v3/ping"): lambda _: {},
            ("GET", "/api/v3/time"): lambda _: {"serverTime": self.now_ms()},
            ("GET", "/api/v3/exchangeInfo"): self._exchange_info,
            ("GET", "/api/v3/ticker/24hr"): self._ticker,
            ("GET", "/api/v3/depth"): self._depth,
            ("GET", "/api/v3/trades"): self._public_trades,
            ("GET", "/api/v3/account"): self._account,
            ("POST", "/api/v3/order"): self._new_order,
            ("GET", "/api/v3/order"): lambda q: self._public_order(
                self._find(q, -2013, "Order does not exist.")
            ),
            ("DELETE", "/api/v3/order"): self._cancel,
            ("GET", "/api/v3/openOrders"): self._open_orders,
            ("DELETE", "/api/v3/openOrders"): self._cancel_open_orders,
            ("GET", "/api/v3/myTrades"): self._my_trades,
            ("GET", "/sapi/v1/asset/tradeFee"): self._trade_fees,
        }
        if key not in routes:
            raise VenueError(404, -1000, "Unknown endpoint")
        return routes[key](p)

    def _spec(self, p: dict[str, str]) -> SymbolSpec:
        if "symbol" not in p:
            raise VenueError(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        spec = self.symbols.get(p["symbol"])
        if spec is None:
            raise VenueError(400, -1121, "Invalid symbol.")
        return spec

    def _exchange_info(self, _: dict[str, str]) -> Any:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": self.weight_limit,
                },
                {
                    "rateLimitType": "ORDERS",
                    "interval": "SECOND",
                    "intervalNum": 10,
                    "limit": self.order_limit,
                },
            ],
            "symbols": [
                {
                    "symbol": name,
                    "status": "TRADING",
                    "baseAsset": s.base,
                    "quoteAsset": s.quote,
                    "baseAssetPrecision": 8,
                    "quoteAssetPrecision": 8,
                    "orderTypes": [
                        "LIMIT",
                        "LIMIT_MAKER",
                        "MARKET",
                        "STOP_LOSS",
                        "STOP_LOSS_LIMIT",
                    ],
                    "isSpotTradingAllowed": True,
                    "permissions": ["SPOT"],
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": f"{s.tick:f}",
                            "maxPrice": "1000000.00000000",
                            "tickSize": f"{s.tick:f}",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": f"{s.min_qty:f}",
                            "maxQty": f"{s.max_qty:f}",
                            "stepSize": f"{s.step:f}",
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": f"{s.min_notional:f}",
                            "applyMinToMarket": True,
                        },
                    ],
                }
                for name, s in self.symbols.items()
            ],
        }

    def _ticker(self, p: dict[str, str]) -> Any:
        spec = self._spec(p)
        last = spec.bids[0][0] if spec.bids else D(0)
        return {
            "symbol": p["symbol"],
            "priceChangePercent": "1.250",
            "lastPrice": f"{last:f}",
            "bidPrice": f"{spec.bids[0][0]:f}",
            "bidQty": f"{spec.bids[0][1]:f}",
            "askPrice": f"{spec.asks[0][0]:f}",
            "askQty": f"{spec.asks[0][1]:f}",
            "openPrice": "42500.00",
            "highPrice": "43500.00",
            "lowPrice": "42000.00",
            "volume": "1234.5",
            "quoteVolume": "53000000.25",
            "closeTime": self.now_ms(),
        }

    def _depth(self, p: dict[str, str]) -> Any:
        spec = self._spec(p)
        limit = int(p.get("limit", "100"))
        if limit not in (5, 10, 20, 50, 100, 500, 1000, 5000):
            raise VenueError(400, -1100, "Illegal characters found in parameter 'limit'.")
        return {
            "lastUpdateId": spec.update_id,
            "bids": [[f"{a:f}", f"{b:f}"] for a, b in spec.bids[:limit]],
            "asks": [[f"{a:f}", f"{b:f}"] for a, b in spec.asks[:limit]],
        }

    def _public_trades(self, p: dict[str, str]) -> Any:
        self._spec(p)
        return [
            {
                "id": 1,
                "price": "43000.00",
                "qty": "0.1",
                "time": self.now_ms() - 2000,
                "isBuyerMaker": True,
            },
            {
                "id": 2,
                "price": "43001.00",
                "qty": "0.2",
                "time": self.now_ms() - 1000,
                "isBuyerMaker": False,
            },
        ][-int(p.get("limit", "500")) :]

    def _trade_fees(self, p: dict[str, str]) -> Any:
        names = [p["symbol"]] if "symbol" in p else list(self.symbols)
        return [
            {
                "symbol": name,
                "makerCommission": f"{self.maker_fee:f}",
                "takerCommission": f"{self.taker_fee:f}",
            }
            for name in names
        ]

    def _account(self, _: dict[str, str]) -> Any:
        return {
            "commissionRates": {
                "maker": f"{self.maker_fee:f}",
                "taker": f"{self.taker_fee:f}",
                "buyer": "0",
                "seller": "0",
            },
            "canTrade": True,
            "accountType": "SPOT",
            "permissions": ["SPOT"],
            "balances": [
                {"asset": asset, "free": f"{free:f}", "locked": f"{locked:f}"}
                for asset, (free, locked) in self.balances.items()
            ],
        }

    def _new_order(self, p: dict[str, str]) -> Any:
        spec = self._spec(p)
        if p.get("type") == "MARKET" and "quoteOrderQty" in p:
            if "quantity" in p:
                raise VenueError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
            p = {**p, "quantity": self._quantity_for_quote(spec, p)}
        for name in ("side", "type", "quantity"):
            if not p.get(name):
                raise VenueError(
                    400,
                    -1102,
                    f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
                )
        side, kind = p["side"], p["type"]
        client_id = p.get("newClientOrderId") or f"auto{next(self._order_ids)}"
        if not CLIENT_ID_RE.match(client_id):
            raise VenueError(
                400, -1100, "Illegal characters found in parameter 'newClientOrderId'."
            )
        if any(
            o["clientOrderId"] == client_id and o["status"] in ("NEW", "PARTIALLY_FILLED")
            for o in self.orders.values()
        ):
            raise VenueError(400, -2010, "Duplicate order sent.")
        quantity = D(p["quantity"])
        price = D(p["price"]) if "price" in p else None
        if kind in ("LIMIT", "LIMIT_MAKER") and price is None:
            raise VenueError(
                400,
                -1102,
                "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
            )
        if kind in ("STOP_LOSS", "STOP_LOSS_LIMIT"):
            return self._new_stop_order(spec, p, client_id, quantity, price)
        if kind == "LIMIT" and p.get("timeInForce") not in ("GTC", "IOC", "FOK"):
            raise VenueError(
                400,
                -1102,
                "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.",
            )
        if price is not None and price % spec.tick != 0:
            raise VenueError(400, -1013, "Filter failure: PRICE_FILTER")
        if quantity % spec.step != 0 or quantity < spec.min_qty or quantity > spec.max_qty:
            raise VenueError(400, -1013, "Filter failure: LOT_SIZE")
        opposite = spec.asks if side == "BUY" else spec.bids
        reference = price if price is not None else opposite[0][0]
        if reference * quantity < spec.min_notional:
            raise VenueError(400, -1013, "Filter failure: NOTIONAL")
        crosses = bool(opposite) and (
            price is None or (opposite[0][0] <= price if side == "BUY" else opposite[0][0] >= price)
        )
        if kind == "LIMIT_MAKER" and crosses:
            raise VenueError(400, -2010, "Order would immediately match and take.")
        fills = []
        remaining = quantity
        for level in opposite:
            if remaining == 0 or (
                price is not None and (level[0] > price if side == "BUY" else level[0] < price)
            ):
                break
            take = min(level[1], remaining)
            fills.append((level[0], take))
            remaining -= take
        tif = p.get("timeInForce", "GTC")
        if tif == "FOK" and remaining > 0:
            fills, remaining = [], quantity
        cost = sum((fp * fq for fp, fq in fills), D(0))
        rests = kind in ("LIMIT", "LIMIT_MAKER") and tif == "GTC" and remaining > 0
        base, quote = (
            self.balances.setdefault(spec.base, [D(0), D(0)]),
            self.balances.setdefault(spec.quote, [D(0), D(0)]),
        )
        if side == "BUY":
            need = cost * (1 + self.taker_fee) + (price * remaining if rests and price else D(0))
            if need > quote[0]:
                raise VenueError(
                    400, -2010, "Account has insufficient balance for requested action."
                )
        else:
            sold = quantity if rests else sum((fq for _, fq in fills), D(0))
            if sold > base[0]:
                raise VenueError(
                    400, -2010, "Account has insufficient balance for requested action."
                )
        order_id = next(self._order_ids)
        now = self.now_ms()
        fill_rows = []
        for fp, fq in fills:
            fee = (fp * fq * self.taker_fee).quantize(D("0.00000001"))
            if side == "BUY":
                quote[0] -= fp * fq + fee
                base[0] += fq
            else:
                base[0] -= fq
                quote[0] += fp * fq - fee
            trade_id = next(self._trade_ids)
            fill_rows.append(
                {
                    "price": f"{fp:f}",
                    "qty": f"{fq:f}",
                    "commission": f"{fee:f}",
                    "commissionAsset": spec.quote,
                    "tradeId": trade_id,
                }
            )
            self.trades.append(
                {
                    "symbol": p["symbol"],
                    "id": trade_id,
                    "orderId": order_id,
                    "price": f"{fp:f}",
                    "qty": f"{fq:f}",
                    "quoteQty": f"{fp * fq:f}",
                    "commission": f"{fee:f}",
                    "commissionAsset": spec.quote,
                    "time": now,
                    "isBuyer": side == "BUY",
                    "isMaker": False,
                    "isBestMatch": True,
                }
            )
            self._consume(opposite, fp, fq)
        if rests:
            if side == "BUY":
                assert price is not None
                quote[0] -= price * remaining
                quote[1] += price * remaining
            else:
                base[0] -= remaining
                base[1] += remaining
        executed = quantity - remaining
        status = (
            "FILLED"
            if remaining == 0
            else ("NEW" if executed == 0 else "PARTIALLY_FILLED")
            if rests
            else "EXPIRED"
        )
        order = {
            "symbol": p["symbol"],
            "orderId": order_id,
            "orderListId": -1,
            "clientOrderId": client_id,
            "transactTime": now,
            "time": now,
            "updateTime": now,
            "price": f"{price or D(0):f}",
            "origQty": f"{quantity:f}",
            "executedQty": f"{executed:f}",
            "cummulativeQuoteQty": f"{cost:f}",
            "status": status,
            "timeInForce": tif if kind == "LIMIT" else "GTC",
            "type": kind,
            "side": side,
            "fills": fill_rows,
        }
        self.orders[order_id] = order
        self._report_placement(order, fill_rows)
        for count, waiter in self._order_waiters:
            if len(self.orders) >= count and not waiter.done():
                waiter.set_result(None)
        return order

    def _quantity_for_quote(self, spec: SymbolSpec, p: dict[str, str]) -> str:
        """quoteOrderQty: the most base quantity, in whole steps, that the quote buys
        (or that sells for at most it) walking the book."""
        remaining = D(p["quoteOrderQty"])
        if remaining < spec.min_notional:
            raise VenueError(400, -1013, "Filter failure: NOTIONAL")
        quantity = D(0)
        for price, size in spec.asks if p.get("side") == "BUY" else spec.bids:
            take = min(
                size, (remaining / price / spec.step).to_integral_value(ROUND_DOWN) * spec.step
            )
            if take <= 0:
                break
            quantity += take
            remaining -= price * take
        return f"{quantity:f}"

    def _new_stop_order(
        self, spec: SymbolSpec, p: dict[str, str], client_id: str, quantity: D, price: D | None
    ) -> Any:
        """STOP_LOSS / STOP_LOSS_LIMIT rest untriggered here (the fake's book never moves)."""
        if "stopPrice" not in p:
            raise VenueError(
                400,
                -1102,
                "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed.",
            )
        stop = D(p["stopPrice"])
        if p["type"] == "STOP_LOSS_LIMIT" and (
            price is None or p.get("timeInForce") not in ("GTC", "IOC", "FOK")
        ):
            raise VenueError(400, -1102, "Mandatory parameter 'price' or 'timeInForce' missing.")
        if stop % spec.tick != 0:
            raise VenueError(400, -1013, "Filter failure: PRICE_FILTER")
        if quantity % spec.step != 0 or quantity < spec.min_qty:
            raise VenueError(400, -1013, "Filter failure: LOT_SIZE")
        last = spec.bids[0][0]
        if (stop <= last) if p["side"] == "BUY" else (stop >= last):
            raise VenueError(400, -2010, "Stop price would trigger immediately.")
        # Funds are held from placement, as for a resting limit order (a stop-market buy
        # holds nothing: its cost is unknown until it triggers).
        held_asset, held = (
            (spec.quote, (price or D(0)) * quantity)
            if p["side"] == "BUY"
            else (spec.base, quantity)
        )
        balance = self.balances.setdefault(held_asset, [D(0), D(0)])
        if held > balance[0]:
            raise VenueError(400, -2010, "Account has insufficient balance for requested action.")
        balance[0] -= held
        balance[1] += held
        order_id = next(self._order_ids)
        now = self.now_ms()
        order = {
            "symbol": p["symbol"],
            "orderId": order_id,
            "orderListId": -1,
            "clientOrderId": client_id,
            "transactTime": now,
            "time": now,
            "updateTime": now,
            "price": f"{price or D(0):f}",
            "stopPrice": f"{stop:f}",
            "origQty": f"{quantity:f}",
            "executedQty": "0",
            "cummulativeQuoteQty": "0",
            "status": "NEW",
            "timeInForce": p.get("timeInForce", "GTC"),
            "type": p["type"],
            "side": p["side"],
            "fills": [],
        }
        self.orders[order_id] = order
        return order

    @staticmethod
    def _consume(levels: list[list[D]], price: D, quantity: D) -> None:
        for level in levels:
            if level[0] == price:
                level[1] -= quantity
        levels[:] = [level for level in levels if level[1] > 0]

    def _find(self, p: dict[str, str], code: int, message: str) -> dict[str, Any]:
        self._spec(p)
        if "orderId" in p:
            order = self.orders.get(int(p["orderId"]))
        elif "origClientOrderId" in p:
            order = next(
                (o for o in self.orders.values() if o["clientOrderId"] == p["origClientOrderId"]),
                None,
            )
        else:
            raise VenueError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        if order is None or order["symbol"] != p["symbol"]:
            raise VenueError(400, code, message)
        return order

    @staticmethod
    def _public_order(order: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in order.items() if k not in ("fills", "transactTime")}

    def _cancel(self, p: dict[str, str]) -> Any:
        order = self._find(p, -2011, "Unknown order sent.")
        if order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            raise VenueError(400, -2011, "Unknown order sent.")
        spec = self.symbols[order["symbol"]]
        remaining = D(order["origQty"]) - D(order["executedQty"])
        if order["side"] == "BUY":
            held = D(order["price"]) * remaining
            self.balances[spec.quote][1] -= held
            self.balances[spec.quote][0] += held
        else:
            self.balances[spec.base][1] -= remaining
            self.balances[spec.base][0] += remaining
        order["status"] = "CANCELED"
        order["updateTime"] = self.now_ms()
        self._report(order, "CANCELED", cancel_client_id=f"web_{next(self._order_ids)}")
        self._report_balances(spec.base, spec.quote)
        return {**self._public_order(order), "origClientOrderId": order["clientOrderId"]}

    def _cancel_open_orders(self, p: dict[str, str]) -> Any:
        """DELETE /api/v3/openOrders: every open order of one symbol (symbol required)."""
        self._spec(p)
        open_ids = [
            order_id
            for order_id, o in self.orders.items()
            if o["symbol"] == p["symbol"] and o["status"] in ("NEW", "PARTIALLY_FILLED")
        ]
        if not open_ids:
            raise VenueError(400, -2011, "Unknown order sent.")
        return [self._cancel({"symbol": p["symbol"], "orderId": str(i)}) for i in open_ids]

    def place_directly(
        self, symbol: str, side: str, quantity: str, price: str, client_id: str
    ) -> dict[str, Any]:
        """An order placed in the venue's own UI or by another tool (not through TITAN)."""
        return self._new_order(
            {
                "symbol": symbol,
                "side": side,
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": quantity,
                "price": price,
                "newClientOrderId": client_id,
            }
        )

    def _open_orders(self, p: dict[str, str]) -> Any:
        if "symbol" in p:
            self._spec(p)
        return [
            self._public_order(o)
            for o in self.orders.values()
            if o["status"] in ("NEW", "PARTIALLY_FILLED")
            and o["symbol"] == p.get("symbol", o["symbol"])
        ]

    def _my_trades(self, p: dict[str, str]) -> Any:
        self._spec(p)
        rows = [t for t in self.trades if t["symbol"] == p["symbol"]]
        if "orderId" in p:
            rows = [t for t in rows if t["orderId"] == int(p["orderId"])]
        limit = int(p.get("limit", "500"))
        if limit > 1000:
            raise VenueError(400, -1100, "Illegal characters found in parameter 'limit'.")
        if "fromId" in p:
            # Oldest first from that trade id, as Binance pages forward.
            return [t for t in rows if t["id"] >= int(p["fromId"])][:limit]
        return rows[-limit:]

    # ---- user data (the private feed's events, as Binance's executionReport etc.) ------

    def fill_resting(self, order_id: int, quantity: D | None = None) -> dict[str, Any]:
        """The market trades against a resting order at its price (maker): ``quantity``
        of it, all that is left by default."""
        order = self.orders[order_id]
        assert order["status"] in ("NEW", "PARTIALLY_FILLED")
        spec = self.symbols[order["symbol"]]
        price, executed = D(order["price"]), D(order["executedQty"])
        qty = quantity if quantity is not None else D(order["origQty"]) - executed
        fee = (price * qty * self.maker_fee).quantize(D("0.00000001"))
        base, quote = self.balances[spec.base], self.balances[spec.quote]
        if order["side"] == "BUY":
            quote[1] -= price * qty
            quote[0] -= fee
            base[0] += qty
        else:
            base[1] -= qty
            quote[0] += price * qty - fee
        now = self.now_ms()
        trade_id = next(self._trade_ids)
        self.trades.append(
            {
                "symbol": order["symbol"],
                "id": trade_id,
                "orderId": order_id,
                "price": f"{price:f}",
                "qty": f"{qty:f}",
                "quoteQty": f"{price * qty:f}",
                "commission": f"{fee:f}",
                "commissionAsset": spec.quote,
                "time": now,
                "isBuyer": order["side"] == "BUY",
                "isMaker": True,
                "isBestMatch": True,
            }
        )
        executed += qty
        order["executedQty"] = f"{executed:f}"
        order["cummulativeQuoteQty"] = f"{D(order['cummulativeQuoteQty']) + price * qty:f}"
        order["status"] = "FILLED" if executed == D(order["origQty"]) else "PARTIALLY_FILLED"
        order["updateTime"] = now
        self._report(order, "TRADE", last=(price, qty, fee, trade_id, True))
        self._report_balances(spec.base, spec.quote)
        return order

    def _report_placement(self, order: dict[str, Any], fill_rows: list[dict[str, Any]]) -> None:
        """NEW, one TRADE per fill (cumulative as of that fill), then EXPIRED if the
        remainder did not rest: the order Binance's user data stream reports them in."""
        spec = self.symbols[order["symbol"]]
        final = dict(order)
        self._report(
            {**order, "status": "NEW", "executedQty": "0", "cummulativeQuoteQty": "0"}, "NEW"
        )
        executed, cost = D(0), D(0)
        for row in fill_rows:
            price, qty = D(row["price"]), D(row["qty"])
            executed, cost = executed + qty, cost + price * qty
            status = "FILLED" if executed == D(order["origQty"]) else "PARTIALLY_FILLED"
            state = {**order, "status": status, "executedQty": f"{executed:f}"}
            state["cummulativeQuoteQty"] = f"{cost:f}"
            self._report(
                state, "TRADE", last=(price, qty, D(row["commission"]), row["tradeId"], False)
            )
        if final["status"] == "EXPIRED":
            self._report(final, "EXPIRED")
        self._report_balances(spec.base, spec.quote)

    def _report(
        self,
        order: dict[str, Any],
        execution: str,
        *,
        last: tuple[D, D, D, int, bool] | None = None,
        cancel_client_id: str = "",
    ) -> None:
        if not self.account_listeners:
            return
        spec = self.symbols[order["symbol"]]
        price, qty, fee, trade_id, maker = last or (D(0), D(0), D(0), -1, False)
        now = self.now_ms()
        self._emit(
            {
                "e": "executionReport",
                "E": now,
                "s": order["symbol"],
                "c": cancel_client_id or order["clientOrderId"],
                "S": order["side"],
                "o": order["type"],
                "f": order["timeInForce"],
                "q": order["origQty"],
                "p": order["price"],
                "P": "0.00000000",
                "F": "0.00000000",
                "g": -1,
                "C": order["clientOrderId"] if cancel_client_id else "",
                "x": execution,
                "X": order["status"],
                "r": "NONE",
                "i": order["orderId"],
                "l": f"{qty:f}",
                "z": order["executedQty"],
                "L": f"{price:f}",
                "n": f"{fee:f}",
                "N": spec.quote if last else None,
                "T": now,
                "t": trade_id,
                "w": order["status"] in ("NEW", "PARTIALLY_FILLED"),
                "m": maker,
                "M": False,
                "O": order["time"],
                "Z": order["cummulativeQuoteQty"],
                "Y": f"{price * qty:f}",
                "Q": "0.00000000",
                "W": order["time"],
                "V": "EXPIRE_MAKER",
            }
        )

    def _report_balances(self, *assets: str) -> None:
        if not self.account_listeners:
            return
        now = self.now_ms()
        rows = [
            {"a": a, "f": f"{self.balances[a][0]:f}", "l": f"{self.balances[a][1]:f}"}
            for a in assets
        ]
        self._emit({"e": "outboundAccountPosition", "E": now, "u": now, "B": rows})

    def _emit(self, event: dict[str, Any]) -> None:
        for listener in list(self.account_listeners):
            listener(event)
