"""KuCoin's private feed against the fake: a bullet-private token (signed), the
``/spotMarket/tradeOrdersV2`` and ``/account/balance`` topics with ``privateChannel``,
a connection cut mid-fill caught up by REST with every fill once after RECOVERED."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import pytest

from tests.fakes.kucoin import FakeKucoin
from tests.fakes.kucoin_streams import FakeKucoinStreams
from tests.integration import test_kucoin
from tests.integration.test_account_streams import accounts_of, read_updates
from tests.integration.test_binance_account import plain
from tests.streaming import serving
from titan_grpc.exchanges.kucoin import KucoinExchange
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway

Venue = tuple[FakeKucoin, FakeKucoinStreams, Gateway, Any]


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    rest = FakeKucoin()
    await rest.start()
    streams = FakeKucoinStreams(rest)
    await streams.start()
    adapter = KucoinExchange(
        test_kucoin.venue(rest.url), retry=test_kucoin.FAST_RETRY, total_timeout=2.0
    )
    try:
        async with serving(adapter) as (gateway, stub):
            yield rest, streams, gateway, stub
    finally:
        await streams.stop()
        await rest.stop()


async def live(gateway: Gateway, streams: FakeKucoinStreams, subscribers: int) -> None:
    feeds = accounts_of(gateway)
    async with asyncio.timeout(10):
        await streams.server.wait_until(lambda: streams.private_subscribers() >= 1)
        await feeds.wait_until(
            lambda: (
                feeds.tracker("kucoin").live and feeds.hub.subscriber_count("kucoin") >= subscribers
            )
        )


async def place(stub: pb_grpc.ExchangeServiceStub, price: str, quantity: str, cid: str) -> Any:
    placed = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="kucoin",
            symbol="BTC-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_LIMIT,
            quantity=quantity,
            price=price,
            client_order_id=cid,
        )
    )
    return placed.order


async def test_private_feed_fills_once_in_order_across_a_cut_connection(venue: Venue) -> None:
    rest, streams, gateway, stub = venue
    calls = [stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest()) for _ in range(2)]
    balances = stub.StreamBalances(pb.StreamBalancesRequest(exchanges=["kucoin"]))
    await live(gateway, streams, 3)
    assert rest.requests["POST /api/v1/bullet-private"] == 1
    order = await place(stub, "43000.5", "0.8", "kc-1")  # 0.4 taken, 0.4 rests
    rest.fill_resting(order.order_id, D("0.1"))
    before = await asyncio.gather(*(read_updates(call, 3) for call in calls))

    streams.deliver = False  # the last fill is lost with the connection
    rest.fill_resting(order.order_id)
    await streams.server.drop_all()
    streams.deliver = True
    after = await asyncio.gather(*(read_updates(call, 3) for call in calls))

    trades = [str(f["tradeId"]) for f in rest.fills if f["orderId"] == order.order_id]
    expected = [
        (pb.ORDER_UPDATE_KIND_STATE, "kc-1", pb.ORDER_STATUS_NEW, "0", ""),
        (pb.ORDER_UPDATE_KIND_FILL, "kc-1", pb.ORDER_STATUS_PARTIALLY_FILLED, "0.4", trades[0]),
        (pb.ORDER_UPDATE_KIND_FILL, "kc-1", pb.ORDER_STATUS_PARTIALLY_FILLED, "0.5", trades[1]),
        ("notice", pb.STREAM_NOTICE_KIND_GAP),
        ("notice", pb.STREAM_NOTICE_KIND_RECOVERED),
        (pb.ORDER_UPDATE_KIND_FILL, "kc-1", pb.ORDER_STATUS_FILLED, "0.8", trades[2]),
    ]
    for got_before, got_after in zip(before, after, strict=True):
        assert [plain(m) for m in got_before + got_after] == expected
    assert after[0][2].update.order.placed_by_gateway

    asked = rest.requests.copy()
    status = await stub.GetOrderStatus(
        pb.GetOrderStatusRequest(exchange="kucoin", symbol="BTC-USDT", client_order_id="kc-1")
    )
    assert rest.requests == asked
    assert status.order.status == pb.ORDER_STATUS_FILLED
    entry = await gateway.journal.get("kucoin", "kc-1")
    assert entry is not None and entry.order is not None
    assert entry.order.filled_quantity == D("0.8")

    async with asyncio.timeout(10):
        message = await balances.read()
    assert not message.balances.simulated and message.balances.balances
    for call in (*calls, balances):
        call.cancel()
