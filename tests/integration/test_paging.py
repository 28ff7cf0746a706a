"""Paged history (AIP-158) on ListTrades, ListLedgerEntries and ListOrders, mapped onto each
venue's own paging: every item exactly once, tokens opaque and checked."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from tests.helpers import bad_request_fields, expect_error
from tests.trader_venues import Venues, venues
from titan_grpc.domain import OrderRequest, OrderType, Side, Symbol, TimeInForce
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

__all__ = ["venues"]  # the shared fixture

FILLS = 2500
EPOCH_MS = 1_780_000_000_000  # the seeded fills are one second apart from here


def stamp(ms: int) -> Timestamp:
    value = Timestamp()
    value.FromMilliseconds(ms)
    return value


async def all_trade_ids(venues: Venues, request: pb.ListTradesRequest) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    while True:
        answer = await venues.stub.ListTrades(request)
        pages += 1
        ids += [fill.trade_id for fill in answer.trades]
        if not answer.next_page_token:
            return ids, pages
        request.page_token = answer.next_page_token


def seed_binance(venues: Venues) -> None:
    for n in range(FILLS):
        venues.binance.trades.append(
            {
                "symbol": "BTCUSDT",
                "id": 10_000 + n * 3,  # Binance trade ids are the market's, not contiguous
                "orderId": 900 + n,
                "price": "43000.00",
                "qty": "0.001",
                "quoteQty": "43.00",
                "commission": "0.043",
                "commissionAsset": "USDT",
                "time": EPOCH_MS + n * 1000,
                "isBuyer": True,
                "isMaker": False,
                "isBestMatch": True,
            }
        )


def seed_coinbase(venues: Venues) -> None:
    for n in range(FILLS):
        venues.coinbase.fills.append(
            {
                "trade_id": 70_000 + n,
                "product_id": "BTC-USD",
                "order_id": f"order-{n}",
                "liquidity": "T",
                "price": "43000.00",
                "size": "0.001",
                "fee": "0.258",
                "created_at": datetime.fromtimestamp(EPOCH_MS / 1000 + n, UTC).isoformat(),
                "side": "buy",
                "settled": True,
            }
        )


def seed_kucoin(venues: Venues) -> None:
    for n in range(FILLS):
        venues.kucoin.fills.append(
            {
                "id": 50_000 + n,
                "orderId": f"order-{n}",
                "tradeId": 80_000 + n,
                "symbol": "BTC-USDT",
                "side": "buy",
                "liquidity": "taker",
                "price": "43000",
                "size": "0.001",
                "funds": "43",
                "fee": "0.043",
                "feeCurrency": "USDT",
                "createdAt": EPOCH_MS + n * 1000,
            }
        )


async def test_paging_through_2500_fills_returns_each_exactly_once(venues: Venues) -> None:
    seed_binance(venues)
    seed_coinbase(venues)
    seed_kucoin(venues)
    for exchange, symbol in (
        ("binance", "BTC-USDT"),
        ("coinbase", "BTC-USD"),
        ("kucoin", "BTC-USDT"),
    ):
        request = pb.ListTradesRequest(exchange=exchange, symbol=symbol, page_size=1000)
        ids, pages = await all_trade_ids(venues, request)
        assert len(ids) == FILLS and len(set(ids)) == FILLS, exchange
        assert pages in (3, 4), exchange  # 3 full pages, maybe an empty last one
    # Binance pages forward from the oldest fill, by trade id.
    assert venues.binance.requests[("GET", "/api/v3/myTrades")] >= 3


async def test_the_simulators_fills_and_ledger_page_newest_first(venues: Venues) -> None:
    engine = venues.world.engine("mock")
    btc = Symbol("BTC", "USDT")
    market = engine.market(btc)
    step = market.step_size * 20  # about 8.6 USDT: above the minimum notional
    for n in range(FILLS):
        engine.place(
            OrderRequest(btc, Side.BUY, OrderType.MARKET, step, None, TimeInForce.IOC, f"seed-{n}")
        )
    request = pb.ListTradesRequest(exchange="mock", symbol="BTC-USDT", page_size=1000)
    first = await venues.stub.ListTrades(request)
    ids, pages = await all_trade_ids(venues, request)
    assert len(ids) == len(set(ids)) >= FILLS and pages == 3
    assert ids[0] == first.trades[0].trade_id  # newest first
    times = [fill.time.ToDatetime() for fill in first.trades]
    assert times == sorted(times, reverse=True)

    ledger = pb.ListLedgerEntriesRequest(exchange="mock", asset="USDT", page_size=700)
    entries: list[str] = []
    while True:
        answer = await venues.stub.ListLedgerEntries(ledger)
        entries += [entry.entry_id for entry in answer.entries]
        if not answer.next_page_token:
            break
        ledger.page_token = answer.next_page_token
    # Each fill moved USDT twice (cost and fee), plus the opening deposit.
    assert len(entries) == len(set(entries)) == 2 * FILLS + 1


async def test_a_time_range_selects_fills_at_or_after_start_and_before_end(
    venues: Venues,
) -> None:
    seed_coinbase(venues)
    seed_kucoin(venues)
    for exchange, symbol in (("coinbase", "BTC-USD"), ("kucoin", "BTC-USDT")):
        request = pb.ListTradesRequest(
            exchange=exchange,
            symbol=symbol,
            page_size=7,
            start_time=stamp(EPOCH_MS + 100_000),
            end_time=stamp(EPOCH_MS + 120_000),
        )
        answer = await venues.stub.ListTrades(request)
        times = {fill.time.ToMilliseconds() for fill in answer.trades}
        assert all(EPOCH_MS + 100_000 <= t < EPOCH_MS + 120_000 for t in times), exchange


async def test_journal_pages_are_stable_while_orders_are_placed(venues: Venues) -> None:
    stub = venues.stub
    mid = venues.world.venue_mid("mock", Symbol("BTC", "USDT"))
    low = str((mid * D("0.9")).quantize(D("0.01")))

    async def place(cid: str) -> None:
        await stub.PlaceOrder(
            pb.PlaceOrderRequest(
                exchange="mock",
                symbol="BTC-USDT",
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_LIMIT,
                quantity="0.001",
                price=low,
                client_order_id=cid,
            )
        )

    for n in range(25):
        await place(f"first-{n}")
    request = pb.ListOrdersRequest(exchange="mock", page_size=10)
    seen: list[str] = []
    while True:
        answer = await stub.ListOrders(request)
        seen += [order.client_order_id for order in answer.orders]
        await place(f"during-{len(seen)}")  # newer orders must not shift the pages
        if not answer.next_page_token:
            break
        request.page_token = answer.next_page_token
    assert sorted(seen) == sorted(f"first-{n}" for n in range(25))
    assert seen[0] == "first-24"  # newest first


async def test_page_tokens_are_checked(venues: Venues) -> None:
    stub = venues.stub
    error = await expect_error(
        stub.ListTrades(pb.ListTradesRequest(exchange="mock", page_token="not-a-token!")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert bad_request_fields(error) == ["page_token"]
    seed_coinbase(venues)
    first = await stub.ListTrades(
        pb.ListTradesRequest(exchange="coinbase", symbol="BTC-USD", page_size=5)
    )
    assert first.next_page_token
    # The same token with other filters, or on another list RPC, is refused.
    for call in (
        stub.ListTrades(
            pb.ListTradesRequest(
                exchange="coinbase", symbol="ETH-BTC", page_token=first.next_page_token
            )
        ),
        stub.ListOrders(pb.ListOrdersRequest(page_token=first.next_page_token)),
    ):
        error = await expect_error(call, grpc.StatusCode.INVALID_ARGUMENT)
        assert bad_request_fields(error) == ["page_token"]
    # A different page size with the same token is fine (AIP-158).
    second = await stub.ListTrades(
        pb.ListTradesRequest(
            exchange="coinbase",
            symbol="BTC-USD",
            page_size=3,
            page_token=first.next_page_token,
        )
    )
    assert len(second.trades) == 3
    assert not {f.trade_id for f in second.trades} & {f.trade_id for f in first.trades}
    error = await expect_error(
        stub.ListTrades(
            pb.ListTradesRequest(
                exchange="mock",
                start_time=stamp(EPOCH_MS),
                end_time=stamp(EPOCH_MS - 1),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert bad_request_fields(error) == ["end_time"]
    error = await expect_error(
        stub.ListTrades(pb.ListTradesRequest(exchange="mock", page_size=1001)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert bad_request_fields(error) == ["page_size"]
