"""The order journal's values: every placement is written (and committed) before it is sent.

One row per (exchange, client order id) holds the request, the journal state and the
last known order; an events table keeps every transition with its time. The stores that
keep them (SQLite by default, PostgreSQL for several hosts) are in ``titan_grpc.stores``;
this module holds the values and their JSON codec, shared by every store.

    INTENT     written, being sent (or the process died while sending)
    ACCEPTED   the venue has the order (its own status is in ``order``)
    REJECTED   the venue refused it definitively; replays answer with the same error
    UNSENT     it never reached the venue (no connection, local rate limit): may be sent
    AMBIGUOUS  sent, outcome unknown: reconciled by client order id, never re-sent blindly
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from titan_grpc.domain import (
    Fill,
    Liquidity,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Symbol,
    TimeInForce,
)


class JournalState(enum.Enum):
    INTENT = "intent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNSENT = "unsent"
    AMBIGUOUS = "ambiguous"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    exchange: str
    client_order_id: str
    request: OrderRequest
    state: JournalState
    order: Order | None
    error_kind: str
    error_message: str
    attempts: int
    created_at: datetime
    updated_at: datetime


# ---- JSON codec (decimals as strings, times as ISO 8601) -------------------------------


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _undec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def encode_request(request: OrderRequest) -> dict[str, Any]:
    return {
        "symbol": request.symbol.canonical,
        "side": request.side.value,
        "type": request.type.value,
        "quantity": str(request.quantity),
        "price": _dec(request.price),
        "time_in_force": request.time_in_force.value,
        "client_order_id": request.client_order_id,
        "post_only": request.post_only,
        "quote_quantity": _dec(request.quote_quantity),
        "stop_price": _dec(request.stop_price),
    }


def decode_request(data: dict[str, Any]) -> OrderRequest:
    base, quote = data["symbol"].split("-")
    return OrderRequest(
        symbol=Symbol(base, quote),
        side=Side(data["side"]),
        type=OrderType(data["type"]),
        quantity=Decimal(data["quantity"]),
        price=_undec(data["price"]),
        time_in_force=TimeInForce(data["time_in_force"]),
        client_order_id=data["client_order_id"],
        post_only=bool(data["post_only"]),
        # Rows written before quote-sized and stop orders lack these keys.
        quote_quantity=_undec(data.get("quote_quantity")),
        stop_price=_undec(data.get("stop_price")),
    )


def _encode_fill(fill: Fill) -> dict[str, Any]:
    return {
        "trade_id": fill.trade_id,
        "order_id": fill.order_id,
        "client_order_id": fill.client_order_id,
        "symbol": fill.symbol.canonical,
        "side": fill.side.value,
        "price": str(fill.price),
        "quantity": str(fill.quantity),
        "fee": str(fill.fee),
        "fee_asset": fill.fee_asset,
        "liquidity": fill.liquidity.value,
        "time": fill.time.isoformat(),
    }


def _decode_fill(data: dict[str, Any]) -> Fill:
    base, quote = data["symbol"].split("-")
    return Fill(
        trade_id=data["trade_id"],
        order_id=data["order_id"],
        client_order_id=data["client_order_id"],
        symbol=Symbol(base, quote),
        side=Side(data["side"]),
        price=Decimal(data["price"]),
        quantity=Decimal(data["quantity"]),
        fee=Decimal(data["fee"]),
        fee_asset=data["fee_asset"],
        liquidity=Liquidity(data["liquidity"]),
        time=datetime.fromisoformat(data["time"]),
    )


def encode_order(order: Order) -> dict[str, Any]:
    return {
        "exchange": order.exchange,
        "symbol": order.symbol.canonical,
        "venue_symbol": order.venue_symbol,
        "order_id": order.order_id,
        "client_order_id": order.client_order_id,
        "side": order.side.value,
        "type": order.type.value,
        "time_in_force": order.time_in_force.value,
        "status": order.status.value,
        "price": _dec(order.price),
        "quantity": str(order.quantity),
        "filled_quantity": str(order.filled_quantity),
        "filled_quote_quantity": str(order.filled_quote_quantity),
        "fee": _dec(order.fee),
        "fee_asset": order.fee_asset,
        "created_time": order.created_time.isoformat(),
        "updated_time": order.updated_time.isoformat(),
        "simulated": order.simulated,
        "fills": [_encode_fill(fill) for fill in order.fills],
        "status_reason": order.status_reason,
        "stop_price": _dec(order.stop_price),
        "quote_quantity": _dec(order.quote_quantity),
    }


def decode_order(data: dict[str, Any]) -> Order:
    base, quote = data["symbol"].split("-")
    return Order(
        exchange=data["exchange"],
        symbol=Symbol(base, quote),
        venue_symbol=data["venue_symbol"],
        order_id=data["order_id"],
        client_order_id=data["client_order_id"],
        side=Side(data["side"]),
        type=OrderType(data["type"]),
        time_in_force=TimeInForce(data["time_in_force"]),
        status=OrderStatus(data["status"]),
        price=_undec(data["price"]),
        quantity=Decimal(data["quantity"]),
        filled_quantity=Decimal(data["filled_quantity"]),
        filled_quote_quantity=Decimal(data["filled_quote_quantity"]),
        fee=_undec(data["fee"]),
        fee_asset=data["fee_asset"],
        created_time=datetime.fromisoformat(data["created_time"]),
        updated_time=datetime.fromisoformat(data["updated_time"]),
        simulated=bool(data["simulated"]),
        fills=tuple(_decode_fill(fill) for fill in data["fills"]),
        status_reason=data["status_reason"],
        stop_price=_undec(data.get("stop_price")),
        quote_quantity=_undec(data.get("quote_quantity")),
    )
