"""Binance's private feed against the fake WebSocket API host: the signed
userDataStream.subscribe.signature, executionReport and outboundAccountPosition
over StreamOrderUpdates/StreamBalances, a connection cut mid-fill caught up by REST with
every fill once after RECOVERED, and GetOrderStatus/the journal without a venue request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal as D
from typing import Any

import pytest

from tests.fakes.binance import FakeBinance
from tests.fakes.binance_streams import FakeBinanceUserData
from tests.integration import test_binance
from tests.integration.test_account_streams import accounts_of, describe, read_updates
from tests.streaming import serving
from titan_grpc.exchanges.binance import BinanceExchange
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway

ORDER_GET = ("GET", "/api/v3/order")


@pytest.fixture
async def venue() -> AsyncIterator[tuple[FakeBinance, FakeBinanceUserData, Gateway, Any]]:
    rest = FakeBinance()
    await rest.start()
    user = FakeBinanceUserData(rest)
    await user.start()
    settings = replace(test_binance.venue_settings(rest.url), ws_api_url=user.url)
    adapter = BinanceExchange(settings, retry=test_binance.FAST_RETRY, total_timeout=2.0)
    try:
        async with serving(adapter) as (gateway, stub):
            yield rest, user, gateway, stub
    finally:
        await user.stop()
        await rest.stop()


async def live(gateway: Gateway, user: FakeBinanceUserData, subscribers: int) -> None:
    feeds = accounts_of(gateway)
    async with asyncio.timeout(10):
        await user.wait_subscribed()
        await feeds.wait_until(
            lambda: (
                feeds.tracker("binance").live
                and feeds.hub.subscriber_count("binance") >= subscribers
            )
        )


async def place(stub: pb_grpc.ExchangeServiceStub, price: str, quantity: str, cid: str) -> Any:
    placed = await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="binance",
            symbol="BTC-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_LIMIT,
            quantity=quantity,
            price=price,
            client_order_id=cid,
        )
    )
    return placed.order


def plain(message: pb.StreamOrderUpdatesResponse) -> tuple[Any, ...]:
    """describe() with the quantity as a plain decimal (Binance sends 8 places)."""
    described = describe(message)
    if described[0] == "notice":
        return described
    kind, cid, status, filled, trade = described
    return kind, cid, status, str(D(filled).normalize()), trade


async def test_fills_are_streamed_once_in_order_across_a_cut_connection(
    venue: tuple[FakeBinance, FakeBinanceUserData, Gateway, Any],
) -> None:
    rest, user, gateway, stub = venue
    calls = [stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest()) for _ in range(2)]
    await live(gateway, user, 2)
    # 0.5 takes the best ask, 0.3 rests at 43001.
    order = await place(stub, "43001", "0.8", "bn-1")
    order_id = int(order.order_id)
    rest.fill_resting(order_id, D("0.1"))
    before = await asyncio.gather(*(read_updates(call, 3) for call in calls))

    user.deliver = False  # the next fill's frame is lost with the connection
    rest.fill_resting(order_id)
    await user.server.drop_all()
    user.deliver = True
    after = await asyncio.gather(*(read_updates(call, 3) for call in calls))

    trades = [t["id"] for t in rest.trades if t["orderId"] == order_id]
    expected = [
        (pb.ORDER_UPDATE_KIND_STATE, "bn-1", pb.ORDER_STATUS_NEW, "0", ""),
        (
            pb.ORDER_UPDATE_KIND_FILL,
            "bn-1",
            pb.ORDER_STATUS_PARTIALLY_FILLED,
            "0.5",
            str(trades[0]),
        ),
        (
            pb.ORDER_UPDATE_KIND_FILL,
            "bn-1",
            pb.ORDER_STATUS_PARTIALLY_FILLED,
            "0.6",
            str(trades[1]),
        ),
        ("notice", pb.STREAM_NOTICE_KIND_GAP),
        ("notice", pb.STREAM_NOTICE_KIND_RECOVERED),
        (pb.ORDER_UPDATE_KIND_FILL, "bn-1", pb.ORDER_STATUS_FILLED, "0.8", str(trades[2])),
    ]
    for got_before, got_after in zip(before, after, strict=True):
        assert [plain(m) for m in got_before + got_after] == expected
    last = after[0][2].update
    assert last.order.placed_by_gateway and last.fill.liquidity == pb.LIQUIDITY_MAKER
    assert D(last.order.fee) == sum(
        D(t["commission"]) for t in rest.trades if t["orderId"] == order_id
    )
    assert user.server.connects == 2  # one private connection, reopened once

    # GetOrderStatus and the journal know the fill without asking the venue.
    asked = rest.requests[ORDER_GET]
    status = await stub.GetOrderStatus(
        pb.GetOrderStatusRequest(exchange="binance", client_order_id="bn-1")
    )
    assert rest.requests[ORDER_GET] == asked
    assert status.order.status == pb.ORDER_STATUS_FILLED
    assert D(status.order.filled_quantity) == D(rest.orders[order_id]["executedQty"])
    entry = await gateway.journal.get("binance", "bn-1")
    assert entry is not None and entry.order is not None
    assert entry.order.filled_quantity == D("0.8")

    # A cancel reports the order's own client id (Binance's C), not the cancel's.
    other = await place(stub, "42000", "0.001", "bn-2")
    await stub.CancelOrder(
        pb.CancelOrderRequest(exchange="binance", symbol="BTC-USDT", order_id=other.order_id)
    )
    for call in calls:
        got = [describe(m)[:3] for m in await read_updates(call, 2)]
        assert got == [
            (pb.ORDER_UPDATE_KIND_STATE, "bn-2", pb.ORDER_STATUS_NEW),
            (pb.ORDER_UPDATE_KIND_STATE, "bn-2", pb.ORDER_STATUS_CANCELED),
        ]
        call.cancel()


async def test_balances_stream_from_account_positions(
    venue: tuple[FakeBinance, FakeBinanceUserData, Gateway, Any],
) -> None:
    rest, user, gateway, stub = venue
    call = stub.StreamBalances(pb.StreamBalancesRequest(exchanges=["binance"]))
    await live(gateway, user, 1)
    await place(stub, "42000", "0.01", "bn-bal")
    async with asyncio.timeout(10):
        message = await call.read()
    got = {b.asset: (D(b.free), D(b.locked)) for b in message.balances.balances}
    assert got["USDT"] == tuple(rest.balances["USDT"])
    assert not message.balances.simulated
    call.cancel()


async def test_a_wrongly_signed_subscription_is_refused_and_reported_as_a_gap() -> None:
    rest = FakeBinance()
    await rest.start()
    user = FakeBinanceUserData(rest, api_key="another-key")
    await user.start()
    settings = replace(test_binance.venue_settings(rest.url), ws_api_url=user.url)
    adapter = BinanceExchange(settings, retry=test_binance.FAST_RETRY, total_timeout=2.0)
    try:
        async with serving(adapter) as (_, stub):
            call = stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest(exchanges=["binance"]))
            async with asyncio.timeout(10):
                message = await call.read()
            assert message.notice.kind == pb.STREAM_NOTICE_KIND_GAP
            assert "-2015" in message.notice.message
            assert "fakeSecret" not in message.notice.message
            call.cancel()
    finally:
        await user.stop()
        await rest.stop()
    assert user.refusals[0] == -2015


async def test_an_unreadable_fill_report_reconnects_and_the_fill_still_arrives_once(
    venue: tuple[FakeBinance, FakeBinanceUserData, Gateway, Any],
) -> None:
    rest, user, gateway, stub = venue
    call = stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest(exchanges=["binance"]))
    await live(gateway, user, 1)
    order = await place(stub, "42000", "0.01", "bn-mangled")
    assert [plain(m)[2] for m in await read_updates(call, 1)] == [pb.ORDER_STATUS_NEW]
    user.mangle = 1  # the fill's executionReport arrives with unreadable numbers
    rest.fill_resting(int(order.order_id))
    got = [plain(m) for m in await read_updates(call, 3)]
    (trade,) = [t["id"] for t in rest.trades if t["orderId"] == int(order.order_id)]
    assert got == [
        ("notice", pb.STREAM_NOTICE_KIND_GAP),
        ("notice", pb.STREAM_NOTICE_KIND_RECOVERED),
        (pb.ORDER_UPDATE_KIND_FILL, "bn-mangled", pb.ORDER_STATUS_FILLED, "0.01", str(trade)),
    ]
    adapter = gateway.registry.resolve("binance")
    assert adapter.frame_stats.malformed == 1  # type: ignore[attr-defined]
    call.cancel()
