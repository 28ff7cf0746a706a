"""A local fake of the Coinbase Exchange REST API that checks requests like Coinbase.

Signatures are verified from the documentation's rule (base64 HMAC-SHA256 keyed with the
base64-decoded secret over timestamp + METHOD + path?query + body), the timestamp must be
within 30 s of the venue clock and the passphrase must match. Orders, accounts, fills and
ledgers are kept; lists page with CB-BEFORE/CB-AFTER; faults can be injected. No code is
shared with TITAN's adapter.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN
from decimal import Decimal as D
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from tests.fakes.server import LoopbackServer

API_KEY = "cbkey" + "0" * 27
API_SECRET = base64.b64encode(b"titan-fake-coinbase-secret-32byt").decode()
PASSPHRASE = "fake-passphrase"


@dataclass
class Product:
    base: str
    quote: str
    quote_increment: D
    base_increment: D
    min_market_funds: D
    bids: list[list[D]]
    asks: list[list[D]]


def default_products() -> dict[str, Product]:
    return {
        "BTC-USD": Product(
            "BTC",
            "USD",
            D("0.01"),
            D("0.00000001"),
            D("1"),
            bids=[[D("43000.00"), D("1")], [D("42999.00"), D("2")]],
            asks=[[D("43001.00"), D("0.5")], [D("43003.00"), D("2")]],
        ),
        "ETH-BTC": Product(
            "ETH",
            "BTC",
            D("0.00001"),
            D("0.00000001"),
            D("0.0001"),
            bids=[[D("0.05300"), D("10")]],
            asks=[[D("0.05310"), D("10")]],
        ),
    }


class VenueError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Fault:
    kind: str  # "5xx", "5xx_after_accept", "timeout_after_accept", "malformed"
    seconds: float = 0.0


@dataclass
class FakeCoinbase:
    api_key: str = API_KEY
    api_secret: str = API_SECRET
    passphrase: str = PASSPHRASE
    clock: Callable[[], float] = time.time
    clock_offset: float = 0.0
    max_page: int = 1000
    # Public endpoints: a lazily refilled token bucket per IP (EXCHANGES-REFERENCE 2.6).
    public_per_second: float = 10.0
    public_burst: int = 15
    products: dict[str, Product] = field(default_factory=default_products)
    balances: dict[str, list[D]] = field(
        default_factory=lambda: {
            "USD": [D("100000"), D(0)],
            "BTC": [D("1"), D(0)],
            "ETH": [D(0), D(0)],
        }
    )
    taker_fee: D = D("0.006")
    maker_fee: D = D("0.004")

    def __post_init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.rate_limited = 0
        self.orders: dict[str, dict[str, Any]] = {}
        self.fills: list[dict[str, Any]] = []
        self.ledger: dict[str, list[dict[str, Any]]] = {}
        self.accounts = {currency: str(uuid.uuid4()) for currency in self.balances}
        self.faults: dict[str, deque[Fault]] = {}
        self._trade_ids = itertools.count(1)
        self._ledger_ids = itertools.count(1)
        self._public_tokens = float(self.public_burst)
        self._bucket_stamp = 0.0
        self._server = LoopbackServer()
        # The user channel (FakeCoinbaseStreams) hears our orders' full-channel messages.
        self.account_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._user_sequence = itertools.count(1)
        self.url = ""

    async def start(self) -> str:
        self.url = await self._server.start(self._middleware)
        return self.url

    async def stop(self) -> None:
        await self._server.stop()

    def inject(self, route: str, *faults: Fault) -> None:
        """``route`` is e.g. "POST /orders" or "GET /products/{id}/ticker"."""
        self.faults.setdefault(route, deque()).extend(faults)

    def orders_per_client_oid(self) -> Counter[str]:
        return Counter(o["client_oid"] for o in self.orders.values())

    def now(self) -> float:
        return self.clock() + self.clock_offset

    # ---- pipeline ----------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.text()
        route, args = self._route_of(request.method, request.path)
        self.requests[route] += 1
        queue = self.faults.get(route)
        fault = queue.popleft() if queue else None
        try:
            if fault and fault.kind == "5xx":
                return web.Response(status=503, text='{"message":"service unavailable"}')
            if fault and fault.kind == "malformed":
                return web.Response(status=200, text="{oops", content_type="application/json")
            if route.startswith("GET /products") or route == "GET /time":
                self._count_public()
            else:
                self._check_signature(request, body)
            params = dict(parse_qsl(request.rel_url.raw_query_string))
            multi = parse_qsl(request.rel_url.raw_query_string)
            answer, headers = self._dispatch(route, args, params, multi, body)
        except VenueError as error:
            self.rejections[error.message] += 1
            if error.status == 429:
                self.rate_limited += 1
            return web.Response(
                status=error.status,
                text=json.dumps({"message": error.message}),
                content_type="application/json",
            )
        if fault and fault.kind == "5xx_after_accept":
            return web.Response(status=502, text="bad gateway")
        if fault and fault.kind == "timeout_after_accept":
            await asyncio.sleep(fault.seconds)
        return web.Response(
            text=json.dumps(answer), content_type="application/json", headers=headers
        )

    @staticmethod
    def _route_of(method: str, path: str) -> tuple[str, list[str]]:
        parts = path.strip("/").split("/")
        if parts[0] == "products" and len(parts) == 3:
            return f"{method} /products/{{id}}/{parts[2]}", [parts[1]]
        if parts[0] == "orders" and len(parts) == 2:
            if parts[1].startswith("client:"):
                return f"{method} /orders/client:{{oid}}", [parts[1].removeprefix("client:")]
            return f"{method} /orders/{{id}}", [parts[1]]
        if parts[0] == "accounts" and len(parts) == 3:
            return f"{method} /accounts/{{id}}/ledger", [parts[1]]
        return f"{method} {path}", []

    def _count_public(self) -> None:
        now = self.clock()
        elapsed = now - self._bucket_stamp if self._bucket_stamp else 0.0
        self._bucket_stamp = now
        self._public_tokens = min(
            self.public_burst, self._public_tokens + elapsed * self.public_per_second
        )
        if self._public_tokens < 1:
            raise VenueError(429, "Public rate limit exceeded")
        self._public_tokens -= 1

    def _check_signature(self, request: web.Request, body: str) -> None:
        headers = request.headers
        for name in (
            "CB-ACCESS-KEY",
            "CB-ACCESS-SIGN",
            "CB-ACCESS-TIMESTAMP",
            "CB-ACCESS-PASSPHRASE",
        ):
            if name not in headers:
                raise VenueError(400, f"{name} header is required")
        if headers["CB-ACCESS-KEY"] != self.api_key:
            raise VenueError(401, "Invalid API Key")
        if headers["CB-ACCESS-PASSPHRASE"] != self.passphrase:
            raise VenueError(401, "Invalid Passphrase")
        try:
            stamp = float(headers["CB-ACCESS-TIMESTAMP"])
        except ValueError:
            raise VenueError(400, "invalid timestamp") from None
        if abs(self.now() - stamp) > 30:
            raise VenueError(401, "request timestamp expired")
        query = request.rel_url.raw_query_string
        path = request.rel_url.raw_path + (f"?{query}" if query else "")
        message = f"{headers['CB-ACCESS-TIMESTAMP']}{request.method}{path}{body}".encode()
        expected = base64.b64encode(
            hmac.new(base64.b64decode(self.api_secret), message, hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, headers["CB-ACCESS-SIGN"]):
            raise VenueError(401, "invalid signature")

    def _dispatch(
        self,
        route: str,
        args: list[str],
        p: dict[str, str],
        multi: list[tuple[str, str]],
        body: str,
    ) -> tuple[Any, dict[str, str]]:
        if route == "GET /time":
            now = self.now()
            return {"iso": datetime.fromtimestamp(now, UTC).isoformat(), "epoch": round(now, 3)}, {}
        if route == "GET /products":
            return [
                {
                    "id": pid,
                    "base_currency": pr.base,
                    "quote_currency": pr.quote,
                    "quote_increment": f"{pr.quote_increment:f}",
                    "base_increment": f"{pr.base_increment:f}",
                    "min_market_funds": f"{pr.min_market_funds:f}",
                    "status": "online",
                    "trading_disabled": False,
                    "cancel_only": False,
                }
                for pid, pr in self.products.items()
            ], {}
        if route.startswith("GET /products/{id}/"):
            product = self._product(args[0])
            kind = route.rsplit("/", 1)[1]
            stamp = datetime.fromtimestamp(self.now(), UTC).isoformat()
            if kind == "ticker":
                return {
                    "trade_id": 7,
                    "price": f"{product.bids[0][0]:f}",
                    "size": "0.01",
                    "bid": f"{product.bids[0][0]:f}",
                    "ask": f"{product.asks[0][0]:f}",
                    "volume": "1500.5",
                    "time": stamp,
                }, {}
            if kind == "stats":
                return {
                    "open": "42000.00",
                    "high": "43500.00",
                    "low": "41900.00",
                    "last": f"{product.bids[0][0]:f}",
                    "volume": "1500.5",
                    "volume_30day": "40000",
                }, {}
            if kind == "book":
                if p.get("level") != "2":
                    raise VenueError(400, "Invalid level")
                return {
                    "sequence": 4242,
                    "bids": [[f"{a:f}", f"{b:f}", 1] for a, b in product.bids],
                    "asks": [[f"{a:f}", f"{b:f}", 1] for a, b in product.asks],
                    "time": stamp,
                }, {}
            if kind == "trades":
                rows = [
                    {
                        "trade_id": 2,
                        "side": "sell",
                        "size": "0.2",
                        "price": "43001.00",
                        "time": stamp,
                    },
                    {
                        "trade_id": 1,
                        "side": "buy",
                        "size": "0.1",
                        "price": "43000.00",
                        "time": stamp,
                    },
                ]
                return rows[: int(p.get("limit", "100"))], {}
        if route == "GET /accounts":
            return [
                {
                    "id": self.accounts[c],
                    "currency": c,
                    "balance": f"{free + hold:f}",
                    "available": f"{free:f}",
                    "hold": f"{hold:f}",
                    "profile_id": "p",
                    "trading_enabled": True,
                }
                for c, (free, hold) in self.balances.items()
            ], {}
        if route == "GET /accounts/{id}/ledger":
            currency = next((c for c, i in self.accounts.items() if i == args[0]), None)
            if currency is None:
                raise VenueError(404, "NotFound")
            return self._page(list(reversed(self.ledger.get(currency, []))), p)
        if route == "POST /orders":
            return self._new_order(json.loads(body)), {}
        if route == "GET /orders/{id}":
            return self._order(args[0]), {}
        if route == "GET /orders/client:{oid}":
            found = next((o for o in self.orders.values() if o["client_oid"] == args[0]), None)
            if found is None:
                raise VenueError(404, "NotFound")
            return found, {}
        if route == "DELETE /orders/{id}":
            order = self._order(args[0])
            if order["status"] == "done":
                raise VenueError(400, "Order already done")
            self._release(order)
            order.update(
                status="done",
                done_reason="canceled",
                done_at=datetime.fromtimestamp(self.now(), UTC).isoformat(),
            )
            remaining = D(order["size"]) - D(order["filled_size"])
            self._user(order, "done", reason="canceled", remaining_size=f"{remaining:f}")
            return order["id"], {}
        if route == "GET /fees":
            return {
                "maker_fee_rate": f"{self.maker_fee:f}",
                "taker_fee_rate": f"{self.taker_fee:f}",
                "usd_volume": "125000.00",
            }, {}
        if route == "DELETE /orders":
            # Cancel all (optionally of one product): the ids cancelled.
            if "product_id" in p:
                self._product(p["product_id"])
            cancelled = []
            for order in self.orders.values():
                if order["status"] in ("open", "pending", "active") and order[
                    "product_id"
                ] == p.get("product_id", order["product_id"]):
                    self._release(order)
                    order.update(
                        status="done",
                        done_reason="canceled",
                        done_at=datetime.fromtimestamp(self.now(), UTC).isoformat(),
                    )
                    cancelled.append(order["id"])
            return cancelled, {}
        if route == "GET /orders":
            statuses = {v for k, v in multi if k == "status"} or {"open", "pending", "active"}
            rows = [o for o in reversed(list(self.orders.values())) if o["status"] in statuses]
            if "product_id" in p:
                rows = [o for o in rows if o["product_id"] == p["product_id"]]
            return self._page(rows, p)
        if route == "GET /fills":
            if "product_id" not in p and "order_id" not in p:
                raise VenueError(400, "product_id or order_id is required")
            rows = [
                f
                for f in reversed(self.fills)
                if f["product_id"] == p.get("product_id", f["product_id"])
                and f["order_id"] == p.get("order_id", f["order_id"])
            ]
            return self._page(rows, p)
        raise VenueError(404, "route not found")

    def _page(self, rows: list[dict[str, Any]], p: dict[str, str]) -> tuple[Any, dict[str, str]]:
        """Newest first; ``after`` is an opaque cursor for older rows (an index here)."""
        start = int(p.get("after", "0"))
        size = min(int(p.get("limit", "100")), self.max_page)
        page = rows[start : start + size]
        return page, {"CB-BEFORE": str(start), "CB-AFTER": str(start + len(page))}

    def _product(self, product_id: str) -> Product:
        product = self.products.get(product_id)
        if product is None:
            raise VenueError(404, "NotFound")
        return product

    def _order(self, order_id: str) -> dict[str, Any]:
        order = self.orders.get(order_id)
        if order is None:
            raise VenueError(404, "NotFound")
        return order

    def _new_order(self, o: dict[str, Any]) -> dict[str, Any]:
        product_id = o.get("product_id", "")
        product = self.products.get(product_id)
        if product is None:
            raise VenueError(400, "Trading pair not available")
        client_oid = o.get("client_oid", "")
        try:
            uuid.UUID(client_oid)
        except ValueError:
            raise VenueError(400, "Invalid client_oid") from None
        if any(x["client_oid"] == client_oid for x in self.orders.values()):
            raise VenueError(400, "duplicate client_oid")
        side, kind = o.get("side"), o.get("type")
        if "funds" in o:
            if kind != "market" or "size" in o:
                raise VenueError(400, "funds applies to market orders, instead of size")
            o = {**o, "size": self._size_for_funds(product, side or "", D(o["funds"]))}
        if "size" not in o:
            raise VenueError(400, "size is required")
        size = D(o["size"])
        if size % product.base_increment:
            raise VenueError(400, "size is too accurate. Smallest unit is 0.00000001")
        price = D(o["price"]) if "price" in o else None
        if price is not None and price % product.quote_increment:
            raise VenueError(400, "price too precise")
        if o.get("stop"):
            return self._new_stop_order(o, product, size, price)
        book = product.asks if side == "buy" else product.bids
        fills, remaining = [], size
        for level in book:
            if remaining == 0 or (
                price is not None and (level[0] > price if side == "buy" else level[0] < price)
            ):
                break
            take = min(level[1], remaining)
            fills.append((level[0], take))
            remaining -= take
        if o.get("post_only") and fills:
            raise VenueError(400, "Post only mode")
        tif = o.get("time_in_force", "GTC")
        if tif == "FOK" and remaining:
            fills, remaining = [], size
        cost = sum((fp * fq for fp, fq in fills), D(0))
        fees = sum(
            ((fp * fq * self.taker_fee).quantize(D("0.0000000001")) for fp, fq in fills), D(0)
        )
        base, quote = (
            self.balances.setdefault(product.base, [D(0), D(0)]),
            self.balances.setdefault(product.quote, [D(0), D(0)]),
        )
        rests = kind == "limit" and tif == "GTC" and remaining > 0
        if (
            side == "buy"
            and cost + fees + ((price or D(0)) * remaining if rests else D(0)) > quote[0]
        ):
            raise VenueError(400, "Insufficient funds")
        if side == "sell" and (size if rests else size - remaining) > base[0]:
            raise VenueError(400, "Insufficient funds")
        order_id = str(uuid.uuid4())
        stamp = datetime.fromtimestamp(self.now(), UTC).isoformat()
        for fp, fq in fills:
            fee = (fp * fq * self.taker_fee).quantize(D("0.0000000001"))
            sign = 1 if side == "buy" else -1
            base[0] += sign * fq
            quote[0] -= sign * fp * fq + fee
            self.fills.append(
                {
                    "trade_id": next(self._trade_ids),
                    "product_id": product_id,
                    "order_id": order_id,
                    "liquidity": "T",
                    "price": f"{fp:f}",
                    "size": f"{fq:f}",
                    "fee": f"{fee:f}",
                    "created_at": stamp,
                    "side": side,
                    "settled": True,
                }
            )
            self._ledger_entry(product.quote, -(sign * fp * fq), "match", order_id)
            self._ledger_entry(product.quote, -fee, "fee", order_id)
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
        done = remaining == 0 or not rests
        order = {
            "id": order_id,
            "client_oid": client_oid,
            "product_id": product_id,
            "side": side,
            "type": kind,
            "size": f"{size:f}",
            "time_in_force": tif,
            "post_only": bool(o.get("post_only")),
            "created_at": stamp,
            "fill_fees": f"{fees:f}",
            "filled_size": f"{size - remaining:f}",
            "executed_value": f"{cost:f}",
            "status": "done" if done else "open",
            "settled": done,
        }
        if price is not None:
            order["price"] = f"{price:f}"
        if done:
            order.update(done_reason="filled" if remaining == 0 else "canceled", done_at=stamp)
        self.orders[order_id] = order
        self._user(order, "received", client_oid=client_oid, order_type=kind, size=f"{size:f}",
                   **({"price": f"{price:f}"} if price is not None else {}))  # fmt: skip
        for row in self.fills[-len(fills) :] if fills else []:
            self._user_match(order, row, taker=True)
        if done:
            self._user(order, "done", reason=order["done_reason"], remaining_size=f"{remaining:f}")
        else:
            self._user(order, "open", remaining_size=f"{remaining:f}")
        return order

    # ---- the user channel (our orders' full-channel messages) -------------------------

    def fill_resting(self, order_id: str, quantity: D | None = None) -> dict[str, Any]:
        """The market trades against a resting order at its price (maker)."""
        order = self.orders[order_id]
        assert order["status"] == "open"
        product = self.products[order["product_id"]]
        price, filled = D(order["price"]), D(order["filled_size"])
        qty = quantity if quantity is not None else D(order["size"]) - filled
        fee = (price * qty * self.maker_fee).quantize(D("0.0000000001"))
        base, quote = self.balances[product.base], self.balances[product.quote]
        if order["side"] == "buy":
            quote[1] -= price * qty
            quote[0] -= fee
            base[0] += qty
        else:
            base[1] -= qty
            quote[0] += price * qty - fee
        stamp = datetime.fromtimestamp(self.now(), UTC).isoformat()
        row = {
            "trade_id": next(self._trade_ids),
            "product_id": order["product_id"],
            "order_id": order_id,
            "liquidity": "M",
            "price": f"{price:f}",
            "size": f"{qty:f}",
            "fee": f"{fee:f}",
            "created_at": stamp,
            "side": order["side"],
            "settled": True,
        }
        self.fills.append(row)
        filled += qty
        order["filled_size"] = f"{filled:f}"
        order["executed_value"] = f"{D(order['executed_value']) + price * qty:f}"
        order["fill_fees"] = f"{D(order['fill_fees']) + fee:f}"
        self._user_match(order, row, taker=False)
        if filled == D(order["size"]):
            order.update(status="done", done_reason="filled", done_at=stamp, settled=True)
            self._user(order, "done", reason="filled", remaining_size="0")
        return order

    def _user_match(self, order: dict[str, Any], row: dict[str, Any], *, taker: bool) -> None:
        rate = self.taker_fee if taker else self.maker_fee
        other = str(uuid.uuid4())
        self._user(
            order,
            "match",
            trade_id=row["trade_id"],
            maker_order_id=other if taker else order["id"],
            taker_order_id=order["id"] if taker else other,
            side=("sell" if order["side"] == "buy" else "buy") if taker else order["side"],
            size=row["size"],
            price=row["price"],
            **{"taker_fee_rate" if taker else "maker_fee_rate": f"{rate:f}"},
        )

    def _user(self, order: dict[str, Any], kind: str, **fields: Any) -> None:
        if not self.account_listeners:
            return
        message = {
            "type": kind,
            "product_id": order["product_id"],
            "sequence": next(self._user_sequence),
            "time": datetime.fromtimestamp(self.now(), UTC).isoformat().replace("+00:00", "Z"),
            "user_id": "fake-user",
            "profile_id": "fake-profile",
            "side": order["side"],
            **fields,
        }
        if kind != "match":
            message["order_id"] = order["id"]
        for listener in list(self.account_listeners):
            listener(message)

    @staticmethod
    def _size_for_funds(product: Product, side: str, funds: D) -> str:
        """The most size, in base increments, the funds buy (or that sells for them)."""
        if funds < product.min_market_funds:
            raise VenueError(400, "funds is too small")
        size, remaining = D(0), funds
        for price, available in product.asks if side == "buy" else product.bids:
            affordable = (remaining / price / product.base_increment).to_integral_value(
                ROUND_DOWN
            ) * product.base_increment
            take = min(available, affordable)
            if take <= 0:
                break
            size += take
            remaining -= price * take
        return f"{size:f}"

    def _new_stop_order(
        self, o: dict[str, Any], product: Product, size: D, price: D | None
    ) -> dict[str, Any]:
        """Stop-limit orders wait for their stop price (the fake's book never moves)."""
        if o.get("type") != "limit" or price is None:
            raise VenueError(400, "stop orders must be limit orders")
        if o["stop"] not in ("loss", "entry") or "stop_price" not in o:
            raise VenueError(400, "stop must be loss or entry, with stop_price")
        base = self.balances.setdefault(product.base, [D(0), D(0)])
        quote = self.balances.setdefault(product.quote, [D(0), D(0)])
        held, held_in = (price * size, quote) if o["side"] == "buy" else (size, base)
        if held > held_in[0]:
            raise VenueError(400, "Insufficient funds")
        held_in[0] -= held
        held_in[1] += held
        order_id = str(uuid.uuid4())
        order = {
            "id": order_id,
            "client_oid": o["client_oid"],
            "product_id": o["product_id"],
            "side": o["side"],
            "type": "limit",
            "size": f"{size:f}",
            "price": f"{price:f}",
            "stop": o["stop"],
            "stop_price": o["stop_price"],
            "time_in_force": o.get("time_in_force", "GTC"),
            "post_only": False,
            "created_at": datetime.fromtimestamp(self.now(), UTC).isoformat(),
            "fill_fees": "0",
            "filled_size": "0",
            "executed_value": "0",
            "status": "active",
            "settled": False,
        }
        self.orders[order_id] = order
        return order

    def _ledger_entry(self, currency: str, amount: D, kind: str, order_id: str) -> None:
        balance = sum(self.balances[currency], D(0))
        self.ledger.setdefault(currency, []).append(
            {
                "id": str(next(self._ledger_ids)),
                "amount": f"{amount:f}",
                "balance": f"{balance:f}",
                "type": kind,
                "created_at": datetime.fromtimestamp(self.now(), UTC).isoformat(),
                "details": {"order_id": order_id},
            }
        )

    def _release(self, order: dict[str, Any]) -> None:
        product = self.products[order["product_id"]]
        remaining = D(order["size"]) - D(order["filled_size"])
        if order["side"] == "buy":
            held = D(order["price"]) * remaining
            self.balances[product.quote][1] -= held
            self.balances[product.quote][0] += held
        else:
            self.balances[product.base][1] -= remaining
            self.balances[product.base][0] += remaining
