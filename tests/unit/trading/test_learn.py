"""The journal learns from the private feed: an ambiguous placement resolves, an older
state never overwrites a newer one, orders TITAN did not place stay out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

from titan_grpc.domain import (
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    Symbol,
    TimeInForce,
)
from titan_grpc.exchanges import ExchangeRegistry
from titan_grpc.stores import Claims, open_stores
from titan_grpc.trading.journal import JournalState
from titan_grpc.trading.orders import OrderService

BTC = Symbol("BTC", "USDT")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
REQUEST = OrderRequest(BTC, Side.BUY, OrderType.LIMIT, D("1"), D("100"), TimeInForce.GTC, "c-1")


def order(status: OrderStatus, filled: str) -> Order:
    return Order(
        "binance", BTC, "BTCUSDT", "42", "c-1", Side.BUY, OrderType.LIMIT, TimeInForce.GTC,
        status, D("100"), D("1"), D(filled), D(filled) * 100, None, "USDT", T0, T0, False,
    )  # fmt: skip


async def test_an_ambiguous_placement_resolves_when_the_feed_reports_it(tmp_path: Path) -> None:
    stores = await open_stores(journal_path=str(tmp_path / "journal.sqlite3"))
    journal = stores.journal
    service = OrderService(journal, Claims(stores.claims), ExchangeRegistry({}))
    await journal.record_intent("binance", REQUEST)
    await journal.record_failure("binance", "c-1", JournalState.AMBIGUOUS, "Timeout", "t")

    assert await service.learn("binance", order(OrderStatus.PARTIALLY_FILLED, "0.5"))
    entry = await journal.get("binance", "c-1")
    assert entry is not None and entry.state is JournalState.ACCEPTED
    assert entry.order is not None and entry.order.filled_quantity == D("0.5")

    # A late, older report does not undo what the journal knows.
    assert await service.learn("binance", order(OrderStatus.NEW, "0"))
    entry = await journal.get("binance", "c-1")
    assert entry is not None and entry.order is not None
    assert entry.order.status is OrderStatus.PARTIALLY_FILLED

    # An order placed elsewhere is reported but not journaled.
    foreign = replace(order(OrderStatus.NEW, "0"), client_order_id="web-1")
    assert not await service.learn("binance", foreign)
    assert await journal.get("binance", "web-1") is None
    await stores.close()
