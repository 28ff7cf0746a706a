"""Coinbase's private feed against the fake ws-feed: the signed ``user`` channel's
received/open/match/done messages over StreamOrderUpdates, a connection cut mid-fill
caught up by REST with every fill once after RECOVERED, balances read after fills."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal as D
from typing import Any

import pytest

from tests.fakes.coinbase import FakeCoinbase
from tests.fakes.coinbase_streams import FakeCoinbaseStreams
from tests.integration import test_coinbase
from tests.integration.test_account_streams import accounts_of, read_updates
from tests.integration.test_binance_account import plain
from tests.streaming import serving
from titan_grpc.exchanges.coinbase import CoinbaseExchange
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway

Venue = tuple[FakeCoinbase, FakeCoinbaseStreams, Gateway, Any]


@pytest.fixture
async def venue() -> AsyncIterator[Venue]:
    rest = FakeCoinbase()
    await rest.start()
    streams = FakeCoinbaseStreams(rest)
    await streams.start()
    settings = replace(test_coinbase.venue(rest.url), ws_url=streams.server.url)
    adapter = CoinbaseExchange(settings, retry=test_coinbase.FAST_RETRY, total_timeout=2.0)
    try:
        async with serving(adapter) as (gateway, stub):
            yield rest, streams, gateway, stub
    finally:
        await streams.stop()
        await rest.stop()


async def live(gateway: Gateway, streams: FakeCoinbaseStreams, subscribers: int) -> None:
    feeds = accounts_of(gateway)
    async with asyncio.timeout(10):
        await streams.server.wait_until(lambda: streams.user_subscribers() >= 1)
        await feeds.wait_until(
            lambda: (
                feeds.tracker("coinbase").live
                and feeds.hub.subscriber_count("coinbase") >= subscribers
            )
        )


async def place(stub: pb_grpc.ExchangeServiceStub, price: str, quantity: str, cid: str) -> Any:
    placed = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="coinbase",
            symbol="BTC-USD",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_LIMIT,
            quantity=quantity,
            price=price,
            client_order_id=cid,
        )
    )
    return placed.order


async def test_user_channel_fills_once_in_order_across_a_cut_connection(venue: Venue) -> None:
    rest, streams, gateway, stub = venue
    calls = [stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest()) for _ in range(2)]
    balances = stub.StreamBalances(pb.StreamBalancesRequest(exchanges=["coinbase"]))
    await live(gateway, streams, 3)
    assert streams.signed_subscriptions == 1
    order = await place(stub, "43001", "0.8", "cb-1")  # 0.5 taken, 0.3 rests
    rest.fill_resting(order.order_id, D("0.1"))
    before = await asyncio.gather(*(read_updates(call, 3) for call in calls))

    streams.deliver = False  # the last fill and the done message are lost
    rest.fill_resting(order.order_id)
    await streams.server.drop_all()
    streams.deliver = True
    after = await asyncio.gather(*(read_updates(call, 3) for call in calls))

    trades = [str(f["trade_id"]) for f in rest.fills if f["order_id"] == order.order_id]
    expected = [
        (pb.ORDER_UPDATE_KIND_STATE, "cb-1", pb.ORDER_STATUS_NEW, "0", ""),
        (pb.ORDER_UPDATE_KIND_FILL, "cb-1", pb.ORDER_STATUS_PARTIALLY_FILLED, "0.5", trades[0]),
        (pb.ORDER_UPDATE_KIND_FILL, "cb-1", pb.ORDER_STATUS_PARTIALLY_FILLED, "0.6", trades[1]),
        ("notice", pb.STREAM_NOTICE_KIND_GAP),
        ("notice", pb.STREAM_NOTICE_KIND_RECOVERED),
        (pb.ORDER_UPDATE_KIND_FILL, "cb-1", pb.ORDER_STATUS_FILLED, "0.8", trades[2]),
    ]
    for got_before, got_after in zip(before, after, strict=True):
        assert [plain(m) for m in got_before + got_after] == expected
    last = after[0][2].update
    assert last.order.placed_by_gateway
    assert D(last.order.fee) == D(rest.orders[order.order_id]["fill_fees"])

    # GetOrderStatus from the feed, not the venue; the journal agrees.
    asked = rest.requests.copy()
    status = await stub.GetOrderStatus(
        pb.GetOrderStatusRequest(exchange="coinbase", client_order_id="cb-1")
    )
    assert rest.requests == asked
    assert status.order.status == pb.ORDER_STATUS_FILLED
    entry = await gateway.journal.get("coinbase", "cb-1")
    assert entry is not None and entry.order is not None
    assert entry.order.filled_quantity == D("0.8")

    async with asyncio.timeout(10):
        message = await balances.read()
    assert {b.asset for b in message.balances.balances} >= {"USD"}
    for call in (*calls, balances):
        call.cancel()


async def test_a_cancel_is_reported_with_our_client_id(venue: Venue) -> None:
    _, streams, gateway, stub = venue
    call = stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest(symbols=["BTC-USD"]))
    await live(gateway, streams, 1)
    order = await place(stub, "42000", "0.01", "cb-cancel")
    await stub.CancelOrder(pb.CancelOrderRequest(exchange="coinbase", order_id=order.order_id))
    got = [plain(m)[:3] for m in await read_updates(call, 2)]
    assert got == [
        (pb.ORDER_UPDATE_KIND_STATE, "cb-cancel", pb.ORDER_STATUS_NEW),
        (pb.ORDER_UPDATE_KIND_STATE, "cb-cancel", pb.ORDER_STATUS_CANCELED),
    ]
    call.cancel()
