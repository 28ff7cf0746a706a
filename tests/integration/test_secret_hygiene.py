"""Canary secrets run through every flow and must appear in no log, response or repr."""

from __future__ import annotations

import logging
from dataclasses import replace

import grpc
import pytest

from tests.conftest import make_settings
from tests.fakes.binance import FakeBinance, Fault
from titan_grpc.config import AuthGrant, Secret, VenueCredentials, VenueSettings
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.binance import BinanceExchange
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.net import RetryPolicy
from titan_grpc.server import start_gateway

CANARY_KEY = "CANARYKEY" + "q" * 55
CANARY_SECRET = "CANARYSECRET" + "z" * 52
CANARY_TOKEN = "canary-token-5e1f0a9b7c3d"
CANARY_WRONG_TOKEN = "canary-wrong-token-77aa11bb"
CANARIES = (CANARY_KEY, CANARY_SECRET, CANARY_TOKEN, CANARY_WRONG_TOKEN)


async def test_canaries_never_leak(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeBinance(api_key=CANARY_KEY, api_secret=CANARY_SECRET)
    await fake.start()
    venue = VenueSettings(
        "binance",
        VenueCredentials(Secret(CANARY_KEY), Secret(CANARY_SECRET)),
        testnet=True,
        base_url=fake.url,
        ws_url="",
    )
    backend = BinanceExchange(
        venue,
        retry=RetryPolicy(attempts=2, base_delay_seconds=0.001),
        reconcile_delays=(0.0,),
        total_timeout=1.0,
    )
    world = SimulatedWorld(7)
    backends: dict[str, ExchangeBackend] = {
        "binance": backend,
        "mock": SimulatedExchange("mock", world),
    }
    settings = replace(
        make_settings(use_real_exchanges=True, binance=venue),
        auth_grants=(AuthGrant(Secret(CANARY_TOKEN), frozenset({"read", "trade"})),),
    )
    gateway = await start_gateway(settings, world=world, backends=backends)
    seen: list[str] = [repr(settings), repr(backend), repr(venue), str(settings)]
    auth = (("authorization", f"Bearer {CANARY_TOKEN}"),)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            order = pb.PlaceOrderRequest(
                exchange="binance",
                symbol="BTC-USDT",
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_LIMIT,
                quantity="0.01",
                price="40000",
                client_order_id="canary-1",
            )
            calls = [
                stub.GetStatus(pb.GetStatusRequest(), metadata=auth),
                stub.TestConnections(pb.TestConnectionsRequest(), metadata=auth),
                stub.TestAuth(pb.TestAuthRequest(), metadata=auth),
                stub.GetMarketData(
                    pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance"), metadata=auth
                ),
                stub.GetBalances(pb.GetBalancesRequest(), metadata=auth),
                stub.PlaceOrder(order, metadata=auth),
                stub.GetOrderStatus(
                    pb.GetOrderStatusRequest(
                        exchange="binance", symbol="BTC-USDT", client_order_id="canary-1"
                    ),
                    metadata=auth,
                ),
                stub.PlaceOrder(
                    pb.PlaceOrderRequest(
                        exchange="binance",
                        symbol="BTC-USDT",
                        side=pb.SIDE_BUY,
                        type=pb.ORDER_TYPE_MARKET,
                        quantity="50",
                    ),
                    metadata=auth,
                ),  # insufficient funds
                stub.GetOrderStatus(
                    pb.GetOrderStatusRequest(exchange="binance", symbol="BTC-USDT", order_id="999"),
                    metadata=auth,
                ),
                stub.GetStatus(
                    pb.GetStatusRequest(),
                    metadata=(("authorization", f"Bearer {CANARY_WRONG_TOKEN}"),),
                ),
                stub.ListOrders(pb.ListOrdersRequest(), metadata=auth),
            ]
            fake.inject("POST", "/api/v3/order", Fault("5xx"))
            fake.inject("GET", "/api/v3/ticker/24hr", Fault("5xx"), Fault("5xx"), Fault("5xx"))
            calls += [
                stub.PlaceOrder(
                    pb.PlaceOrderRequest(
                        exchange="binance",
                        symbol="BTC-USDT",
                        side=pb.SIDE_BUY,
                        type=pb.ORDER_TYPE_LIMIT,
                        quantity="0.01",
                        price="40000",
                    ),
                    metadata=auth,
                ),  # ambiguous
                stub.GetMarketData(
                    pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance"), metadata=auth
                ),
            ]
            errors = 0
            for pending in calls:
                try:
                    seen.append(str(await pending))
                except grpc.aio.AioRpcError as error:
                    errors += 1
                    seen += [
                        repr(error),
                        str(error.details()),
                        str(error.trailing_metadata()),
                        str(error.debug_error_string()),
                    ]
            assert errors >= 4  # the failure paths really ran
    finally:
        await gateway.stop(grace=0.5)
        await fake.stop()
    captured = capfd.readouterr()
    seen += [caplog.text, captured.out, captured.err]
    seen += [repr(record.__dict__) for record in caplog.records]
    everything = "\n".join(seen)
    assert "rpc=PlaceOrder" in everything and "upstream venue=binance" in everything
    for canary in CANARIES:
        assert canary not in everything, f"leaked {canary[:10]}..."
