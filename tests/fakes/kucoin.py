"""A local fake of KuCoin's spot REST API that checks requests like KuCoin (key v2).

It verifies KC-API-SIGN over timestamp + METHOD + endpoint-with-query + body and the
HMAC-signed passphrase, keeps the 5 s timestamp window, wraps every answer as
{"code": "200000", "data": ...}, reports business errors inside HTTP 200 as KuCoin does,
pages ledgers (currentPage) and HF fills (lastId), counts pool weight with
gw-ratelimit-* headers and injects faults. No code is shared with TITAN's adapter.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
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

API_KEY = "kckey" + "1" * 19
API_SECRET = "kc-secret-0000-1111-2222"
PASSPHRASE = "kc-passphrase"


@dataclass
class SymbolSpec:
    base: str
    quote: str
    price_increment: D
    base_increment: D
    base_min: D
    min_funds: D
    bids: list[list[D]]
    asks: list[list[D]]
    sequence: int = 31337  # the book's sequence (the level2 stream's sequenceEnd)


def default_symbols() -> dict[str, SymbolSpec]:
    return {
        "BTC-USDT": SymbolSpec(
            "BTC",
            "USDT",
            D("0.1"),
            D("0.00000001"),
            D("0.00001"),
            D("0.1"),
            bids=[[D("43000.0"), D("1")], [D("42999.9"), D("2")]],
            asks=[[D("43000.5"), D("0.4")], [D("43001.0"), D("3")]],
        ),
    }


class VenueError(Exception):
    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message


@dataclass
class Fault:
    kind: str  # "5xx", "5xx_after_accept", "timeout_after_accept", "malformed"
    seconds: float = 0.0


@dataclass
class FakeKucoin:
    api_key: str = API_KEY
    api_secret: str = API_SECRET
    passphrase: str = PASSPHRASE
    clock: Callable[[], float] = time.time
    clock_offset_ms: int = 0
    pool_limit: int = 2000
    page_size_cap: int = 500
    symbols: dict[str, SymbolSpec] = field(default_factory=default_symbols)
    balances: dict[str, list[D]] = field(
        default_factory=lambda: {"USDT": [D("50000"), D(0)], "BTC": [D("1"), D(0)]}
    )
    taker_fee: D = D("0.001")
    maker_fee: D = D("0.001")
    # What bullet-public hands out (the streams fake sets the endpoint when it starts).
    ws_endpoint: str = "ws://127.0.0.1:9/endpoint"
    ws_token: str = "fake-public-token"
    ping_interval_ms: int = 18000
    ping_timeout_ms: int = 10000

    def __post_init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.rate_limited = 0
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: list[dict[str, Any]] = []
        self.ledger: list[dict[str, Any]] = []
        self.faults: dict[str, deque[Fault]] = {}
        self._ids = itertools.count(1)
        self._window_start = 0.0
        self._used = 0
        self._server = LoopbackServer()
        self.url = ""

    async def start(self) -> str:
        self.url = await self._server.start(self._middleware)
        return self.url

    async def stop(self) -> None:
        await self._server.stop()

    def inject(self, route: str, *faults: Fault) -> None:
        self.faults.setdefault(route, deque()).extend(faults)

    def orders_per_client_oid(self) -> Counter[str]:
        return Counter(o["clientOid"] for o in self.orders.values())

    def now_ms(self) -> int:
        return int(self.clock() * 1000) + self.clock_offset_ms

    def _ok(self, data: Any, status: int = 200) -> web.Response:
        return self._envelope({"code": "200000", "data": data}, status)

    def _envelope(self, body: Any, status: int) -> web.Response:
        return web.Response(
            status=status,
            text=json.dumps(body),
            content_type="application/json",
            headers={
                "gw-ratelimit-limit": str(self.pool_limit),
                "gw-ratelimit-remaining": str(max(self.pool_limit - self._used, 0)),
                "gw-ratelimit-reset": str(
                    int(max(0.0, 30 - (self.clock() - self._window_start)) * 1000)
                ),
            },
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.text()
        route, arg = self._route_of(request.method, request.path)
        self.requests[route] += 1
        queue = self.faults.get(route)
        fault = queue.popleft() if queue else None
        try:
            if fault and fault.kind == "5xx":
                return web.Response(status=503, text="upstream unavailable")
            if fault and fault.kind == "malformed":
                return web.Response(status=200, text='{"code":', content_type="application/json")
            self._count_weight()
            public = "/market/" in route and "/api/v3/" not in route  # v3 book is signed
            if not public and route not in (
                "GET /api/v1/timestamp",
                "GET /api/v2/symbols",
                "POST /api/v1/bullet-public",
            ):
                self._check_signature(request, body)
            params = dict(parse_qsl(request.rel_url.raw_query_string))
            data = self._dispatch(route, arg, params, body)
        except VenueError as error:
            self.rejections[error.code] += 1
            return self._envelope({"code": error.code, "msg": error.message}, error.http_status)
        if fault and fault.kind == "5xx_after_accept":
            return web.Response(status=502, text="bad gateway")
        if fault and fault.kind == "timeout_after_accept":
            await asyncio.sleep(fault.seconds)
        return self._ok(data)

    @staticmethod
    def _route_of(method: str, path: str) -> tuple[str, str]:
        for prefix in ("/api/v1/hf/orders/client-order/", "/api/v1/hf/orders/"):
            if path.startswith(prefix) and path not in (
                "/api/v1/hf/orders/active",
                "/api/v1/hf/orders/active/symbols",
            ):
                return f"{method} {prefix}{{id}}", path.removeprefix(prefix)
        return f"{method} {path}", ""

    def _count_weight(self) -> None:
        now = self.clock()
        if now - self._window_start >= 30:
            self._window_start, self._used = now, 0
        self._used += 1
        if self._used > self.pool_limit:
            self.rate_limited += 1
            raise VenueError(429, "429000", "Too Many Requests")

    def _check_signature(self, request: web.Request, body: str) -> None:
        h = request.headers
        if not all(
            name in h
            for name in ("KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP", "KC-API-PASSPHRASE")
        ):
            raise VenueError(
                401,
                "400001",
                "Please check the header of your request for "
                "KC-API-KEY, KC-API-SIGN, KC-API-TIMESTAMP, KC-API-PASSPHRASE",
            )
        if h["KC-API-KEY"] != self.api_key:
            raise VenueError(401, "400003", "KC-API-KEY not exists")
        if h.get("KC-API-KEY-VERSION") != "2":
            raise VenueError(401, "400004", "Invalid KC-API-PASSPHRASE")

        def b64(message: str) -> str:
            return base64.b64encode(
                hmac.new(self.api_secret.encode(), message.encode(), hashlib.sha256).digest()
            ).decode()

        if not hmac.compare_digest(h["KC-API-PASSPHRASE"], b64(self.passphrase)):
            raise VenueError(401, "400004", "Invalid KC-API-PASSPHRASE")
        if abs(self.now_ms() - int(h["KC-API-TIMESTAMP"])) > 5000:
            raise VenueError(401, "400002", "Invalid KC-API-TIMESTAMP")
        query = request.rel_url.raw_query_string
        endpoint = request.rel_url.raw_path + (f"?{query}" if query else "")
        expected = b64(f"{h['KC-API-TIMESTAMP']}{request.method}{endpoint}{body}")
        if not hmac.compare_digest(h["KC-API-SIGN"], expected):
            raise VenueError(401, "400005", "Signature error")

    def _spec(self, p: dict[str, str]) -> SymbolSpec:
        spec = self.symbols.get(p.get("symbol", ""))
        if spec is None:
            raise VenueError(200, "900001", "symbol not exists")
        return spec

    def _dispatch(self, route: str, arg: str, p: dict[str, str], body: str) -> Any:
        if route == "GET /api/v1/timestamp":
            return self.now_ms()
        if route == "POST /api/v1/bullet-public":
            server = {
                "endpoint": self.ws_endpoint,
                "encrypt": True,
                "protocol": "websocket",
                "pingInterval": self.ping_interval_ms,
                "pingTimeout": self.ping_timeout_ms,
            }
            return {"token": self.ws_token, "instanceServers": [server]}
        if route == "GET /api/v2/symbols":
            return [
                {
                    "symbol": n,
                    "name": n,
                    "baseCurrency": s.base,
                    "quoteCurrency": s.quote,
                    "baseMinSize": f"{s.base_min:f}",
                    "baseMaxSize": "10000000000",
                    "baseIncrement": f"{s.base_increment:f}",
                    "priceIncrement": f"{s.price_increment:f}",
                    "quoteIncrement": "0.000001",
                    "minFunds": f"{s.min_funds:f}",
                    "enableTrading": True,
                }
                for n, s in self.symbols.items()
            ]
        if route == "GET /api/v1/market/orderbook/level1":
            s = self._spec(p)
            return {
                "time": self.now_ms(),
                "sequence": "99",
                "price": f"{s.bids[0][0]:f}",
                "size": "0.01",
                "bestBid": f"{s.bids[0][0]:f}",
                "bestBidSize": f"{s.bids[0][1]:f}",
                "bestAsk": f"{s.asks[0][0]:f}",
                "bestAskSize": f"{s.asks[0][1]:f}",
            }
        if route == "GET /api/v1/market/stats":
            s = self._spec(p)
            return {
                "time": self.now_ms(),
                "symbol": p["symbol"],
                "buy": f"{s.asks[0][0]:f}",
                "sell": f"{s.bids[0][0]:f}",
                "changeRate": "0.0125",
                "changePrice": "530.0",
                "high": "43500.0",
                "low": "42000.0",
                "vol": "812.5",
                "volValue": "34937500.0",
                "last": "43000.0",
                "takerFeeRate": "0.001",
            }
        if route in (
            "GET /api/v1/market/orderbook/level2_20",
            "GET /api/v1/market/orderbook/level2_100",
            "GET /api/v3/market/orderbook/level2",  # the whole book, signed
        ):
            s = self._spec(p)
            limits = {"_20": 20, "_100": 100}
            depth = next((n for end, n in limits.items() if route.endswith(end)), 10**6)
            return {
                "sequence": str(s.sequence),
                "time": self.now_ms(),
                "bids": [[f"{a:f}", f"{b:f}"] for a, b in s.bids[:depth]],
                "asks": [[f"{a:f}", f"{b:f}"] for a, b in s.asks[:depth]],
            }
        if route == "GET /api/v1/market/histories":
            self._spec(p)
            ns = self.now_ms() * 1_000_000
            return [
                {
                    "sequence": "1",
                    "price": "43000.0",
                    "size": "0.1",
                    "side": "sell",
                    "time": ns - 2_000_000_000,
                },
                {
                    "sequence": "2",
                    "price": "43000.5",
                    "size": "0.2",
                    "side": "buy",
                    "time": ns - 1_000_000_000,
                },
            ]
        if route == "GET /api/v1/accounts":
            return [
                {
                    "id": f"acc-{c}",
                    "currency": c,
                    "type": p.get("type", "trade"),
                    "balance": f"{free + held:f}",
                    "available": f"{free:f}",
                    "holds": f"{held:f}",
                }
                for c, (free, held) in self.balances.items()
            ]
        if route == "GET /api/v1/accounts/ledgers":
            rows = [
                e
                for e in reversed(self.ledger)
                if e["currency"] == p.get("currency", e["currency"])
            ]
            page, size = (
                int(p.get("currentPage", "1")),
                min(int(p.get("pageSize", "50")), self.page_size_cap),
            )
            total_pages = max(1, -(-len(rows) // size))
            return {
                "currentPage": page,
                "pageSize": size,
                "totalNum": len(rows),
                "totalPage": total_pages,
                "items": rows[(page - 1) * size : page * size],
            }
        if route == "POST /api/v1/hf/orders":
            return self._new_order(json.loads(body))
        if route in ("GET /api/v1/hf/orders/{id}", "GET /api/v1/hf/orders/client-order/{id}"):
            return self._find(route, arg, p)
        if route == "DELETE /api/v1/hf/orders/{id}":
            order = self._find(route, arg, p)
            if not order["active"]:
                raise VenueError(200, "400100", "order cannot be canceled")
            self._release(order)
            order.update(
                active=False,
                inOrderBook=False,
                cancelledSize=f"{D(order['size']) - D(order['dealSize']):f}",
                lastUpdatedAt=self.now_ms(),
            )
            return {"orderId": order["id"]}
        if route == "GET /api/v1/trade-fees":
            names = [n for n in p.get("symbols", "").split(",") if n]
            if not names or len(names) > 10:
                raise VenueError(200, "400100", "symbols: between 1 and 10 symbols")
            for name in names:
                self._spec({"symbol": name})
            return [
                {
                    "symbol": name,
                    "makerFeeRate": f"{self.maker_fee:f}",
                    "takerFeeRate": f"{self.taker_fee:f}",
                }
                for name in names
            ]
        if route == "GET /api/v1/hf/orders/active/symbols":
            return {"symbols": sorted({o["symbol"] for o in self.orders.values() if o["active"]})}
        if route == "DELETE /api/v1/hf/orders":
            # HF cancel all of one symbol: answers "success"; results via order queries.
            self._spec(p)
            for order in self.orders.values():
                if order["active"] and order["symbol"] == p["symbol"]:
                    self._release(order)
                    order.update(
                        active=False,
                        inOrderBook=False,
                        cancelledSize=f"{D(order['size']) - D(order['dealSize']):f}",
                        lastUpdatedAt=self.now_ms(),
                    )
            return "success"
        if route == "GET /api/v1/hf/orders/active":
            self._spec(p)
            return [o for o in self.orders.values() if o["active"] and o["symbol"] == p["symbol"]]
        if route == "GET /api/v1/hf/fills":
            self._spec(p)
            rows = [
                f
                for f in reversed(self.fills)
                if f["symbol"] == p["symbol"] and f["orderId"] == p.get("orderId", f["orderId"])
            ]
            if "lastId" in p:
                rows = [f for f in rows if f["id"] < int(p["lastId"])]
            limit = int(p.get("limit", "20"))
            page = rows[:limit]
            return {"items": page, "lastId": page[-1]["id"] if len(rows) > limit else 0}
        raise VenueError(404, "404000", "Url Not Found")

    def _find(self, route: str, arg: str, p: dict[str, str]) -> dict[str, Any]:
        self._spec(p)
        if "client-order" in route:
            found = next((o for o in self.orders.values() if o["clientOid"] == arg), None)
        else:
            found = self.orders.get(arg)
        if found is None or found["symbol"] != p["symbol"]:
            raise VenueError(200, "126043", "order not exist.")
        return found

    @staticmethod
    def _size_for_funds(spec: SymbolSpec, side: str, funds: D) -> str:
        """The most size, in base increments, the funds buy (or that sells for them)."""
        size, remaining = D(0), funds
        for price, available in spec.asks if side == "buy" else spec.bids:
            affordable = (remaining / price / spec.base_increment).to_integral_value(
                ROUND_DOWN
            ) * spec.base_increment
            take = min(available, affordable)
            if take <= 0:
                break
            size += take
            remaining -= price * take
        return f"{size:f}"

    def _new_order(self, o: dict[str, Any]) -> Any:
        spec = self._spec(o)
        if "funds" in o:
            if o.get("type") != "market" or "size" in o:
                raise VenueError(200, "400100", "funds: market orders only, instead of size")
            o = {**o, "size": self._size_for_funds(spec, o.get("side", ""), D(o["funds"]))}
        for name in ("clientOid", "side", "type", "size"):
            if name not in o:
                raise VenueError(200, "400100", f"{name} is required")
        if any(x["clientOid"] == o["clientOid"] for x in self.orders.values()):
            raise VenueError(200, "126044", "clientOid duplicated")
        side, size = o["side"], D(o["size"])
        price = D(o["price"]) if "price" in o else None
        if price is not None and price % spec.price_increment:
            raise VenueError(200, "400100", "Price increment invalid.")
        if size % spec.base_increment or size < spec.base_min:
            raise VenueError(200, "400100", "Size increment invalid.")
        book = spec.asks if side == "buy" else spec.bids
        fills, remaining = [], size
        for level in book:
            if remaining == 0 or (
                price is not None and (level[0] > price if side == "buy" else level[0] < price)
            ):
                break
            take = min(level[1], remaining)
            fills.append((level[0], take))
            remaining -= take
        tif = o.get("timeInForce", "GTC")
        if tif == "FOK" and remaining:
            fills, remaining = [], size
        rests = o["type"] == "limit" and tif == "GTC" and remaining > 0
        cost = sum((fp * fq for fp, fq in fills), D(0))
        fee_total = sum(
            ((fp * fq * self.taker_fee).quantize(D("0.00000001")) for fp, fq in fills), D(0)
        )
        base, quote = (
            self.balances.setdefault(spec.base, [D(0), D(0)]),
            self.balances.setdefault(spec.quote, [D(0), D(0)]),
        )
        if (
            side == "buy"
            and cost + fee_total + ((price or D(0)) * remaining if rests else D(0)) > quote[0]
        ):
            raise VenueError(200, "200004", "Balance insufficient!")
        if side == "sell" and (size if rests else size - remaining) > base[0]:
            raise VenueError(200, "200004", "Balance insufficient!")
        order_id = f"kc{next(self._ids):022d}"
        now = self.now_ms()
        for fp, fq in fills:
            fee = (fp * fq * self.taker_fee).quantize(D("0.00000001"))
            sign = 1 if side == "buy" else -1
            base[0] += sign * fq
            quote[0] -= sign * fp * fq + fee
            self.fills.append(
                {
                    "id": next(self._ids),
                    "orderId": order_id,
                    "tradeId": next(self._ids),
                    "symbol": o["symbol"],
                    "side": side,
                    "liquidity": "taker",
                    "price": f"{fp:f}",
                    "size": f"{fq:f}",
                    "funds": f"{fp * fq:f}",
                    "fee": f"{fee:f}",
                    "feeCurrency": spec.quote,
                    "createdAt": now,
                }
            )
            self.ledger.append(
                {
                    "id": str(next(self._ids)),
                    "currency": spec.quote,
                    "amount": f"{fp * fq + fee:f}",
                    "fee": f"{fee:f}",
                    "balance": f"{quote[0] + quote[1]:f}",
                    "bizType": "Exchange",
                    "direction": "out" if side == "buy" else "in",
                    "createdAt": now,
                    "context": order_id,
                }
            )
            for level in book:
                if level[0] == fp:
                    level[1] -= fq
            book[:] = [level for level in book if level[1] > 0]
        if rests:
            if side == "buy":
                assert price is not None
                quote[0] -= price * remaining
                quote[1] += price * remaining
            else:
                base[0] -= remaining
                base[1] += remaining
        self.orders[order_id] = {
            "id": order_id,
            "clientOid": o["clientOid"],
            "symbol": o["symbol"],
            "type": o["type"],
            "side": side,
            "price": f"{price or D(0):f}",
            "size": f"{size:f}",
            "dealSize": f"{size - remaining:f}",
            "dealFunds": f"{cost:f}",
            "fee": f"{fee_total:f}",
            "feeCurrency": spec.quote,
            "timeInForce": tif,
            "postOnly": bool(o.get("postOnly")),
            "active": rests,
            "inOrderBook": rests,
            "cancelledSize": "0" if rests or remaining == 0 else f"{remaining:f}",
            "createdAt": now,
            "lastUpdatedAt": now,
        }
        return {"orderId": order_id, "clientOid": o["clientOid"]}

    def _release(self, order: dict[str, Any]) -> None:
        spec = self.symbols[order["symbol"]]
        remaining = D(order["size"]) - D(order["dealSize"])
        if order["side"] == "buy":
            held = D(order["price"]) * remaining
            self.balances[spec.quote][1] -= held
            self.balances[spec.quote][0] += held
        else:
            self.balances[spec.base][1] -= remaining
            self.balances[spec.base][0] += remaining
