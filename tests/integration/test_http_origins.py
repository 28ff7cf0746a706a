"""Browsers and the HTTP/JSON routes: a page the trader visits cannot trade through an
unauthenticated gateway on 127.0.0.1 (cross-origin requests, DNS rebinding); listed
origins get CORS, Server-Sent Events included."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest

from tests.conftest import make_settings
from titan_grpc.config import load_settings
from titan_grpc.errors import ConfigError
from titan_grpc.exchanges.simulated import SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.http.origins import OriginPolicy
from titan_grpc.server import Gateway, start_gateway

DASHBOARD = "http://dash.example:8080"
ORDER = {
    "exchange": "binance",
    "symbol": "BTC-USDT",
    "side": "SIDE_BUY",
    "type": "ORDER_TYPE_LIMIT",
    "quantity": "0.1",
    "price": "100",
    "clientOrderId": "page-order-1",
}


@pytest.fixture
async def gateway(world: SimulatedWorld) -> AsyncIterator[Gateway]:
    settings = make_settings(http_address="127.0.0.1:0", http_cors_origins=(DASHBOARD,))
    running = await start_gateway(settings, world=world)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


def url(gateway: Gateway, path: str) -> str:
    assert gateway.http is not None
    return f"http://127.0.0.1:{gateway.http.port}{path}"


async def journaled_orders(gateway: Gateway) -> list[pb.JournaledOrder]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
        stub = pb_grpc.ExchangeServiceStub(channel)
        answer = await stub.ListOrders(pb.ListOrdersRequest(), timeout=10)
    return list(answer.orders)


async def test_a_page_from_another_origin_cannot_place_an_order(gateway: Gateway) -> None:
    # What a malicious page can send without a CORS preflight: a text/plain POST.
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url(gateway, "/api/exchange/place-order"),
            data=json.dumps(ORDER),
            headers={
                "Origin": "https://evil.example",
                "Content-Type": "text/plain",
                "x-request-id": "evil-1",
            },
        ) as response,
    ):
        assert response.status == 403
        assert response.headers["x-request-id"] == "evil-1"
        status = await response.json()
        assert "Access-Control-Allow-Origin" not in response.headers
    assert status["code"] == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "TITAN_HTTP_CORS_ORIGINS" in status["message"]
    assert await journaled_orders(gateway) == []  # nothing reached the journal or a venue


async def test_a_rebound_host_name_is_refused_on_loopback(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        for host, expected in (("rebound.example:80", 403), ("localhost:3000", 200)):
            async with session.get(
                url(gateway, "/api/exchange/balances"), headers={"Host": host}
            ) as response:
                assert response.status == expected, (host, await response.text())
                if expected == 403:
                    assert "DNS rebinding" in (await response.json())["message"]
                    assert re.fullmatch(r"[0-9a-f]{8}-[0-9]+", response.headers["x-request-id"])


async def test_a_listed_origin_gets_cors_for_calls_and_streams(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.options(
            url(gateway, "/api/exchange/place-order"),
            headers={
                "Origin": DASHBOARD,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        ) as preflight:
            assert preflight.status == 204
            assert preflight.headers["Access-Control-Allow-Origin"] == DASHBOARD
            assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
            allowed = preflight.headers["Access-Control-Allow-Headers"]
            assert {"authorization", "content-type"} <= set(allowed.split(", "))
        async with session.post(
            url(gateway, "/api/exchange/place-order"),
            json=ORDER,
            headers={"Origin": DASHBOARD},
        ) as placed:
            assert placed.status == 200, await placed.text()
            assert placed.headers["Access-Control-Allow-Origin"] == DASHBOARD
            assert placed.headers["Access-Control-Expose-Headers"] == "x-request-id"
            assert "Origin" in placed.headers.getall("Vary")
        stream = await session.get(
            url(gateway, "/v1/quotes:stream?symbols=BTC-USDT&exchanges=binance"),
            headers={"Origin": DASHBOARD},
        )
        try:
            assert stream.status == 200
            assert stream.headers["Access-Control-Allow-Origin"] == DASHBOARD
            assert (await stream.content.readline()).startswith(b"data:")
        finally:
            stream.close()
    assert [order.client_order_id for order in await journaled_orders(gateway)] == ["page-order-1"]


async def test_an_unlisted_origin_gets_no_preflight(gateway: Gateway) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.options(
            url(gateway, "/api/exchange/place-order"),
            headers={"Origin": "http://dash.example:8081", "Access-Control-Request-Method": "POST"},
        ) as preflight,
    ):
        assert preflight.status == 403
        assert "Access-Control-Allow-Origin" not in preflight.headers


def test_hosts_are_checked_on_loopback_only() -> None:
    loopback = OriginPolicy.for_address(True, (), ("titan.internal",))
    assert loopback.allowed_hosts == {"localhost", "127.0.0.1", "::1", "titan.internal"}
    assert OriginPolicy.for_address(False, ()).allowed_hosts is None  # tokens are required


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TITAN_HTTP_CORS_ORIGINS", "*"),
        ("TITAN_HTTP_CORS_ORIGINS", "https://dash.example/app"),
        ("TITAN_HTTP_CORS_ORIGINS", "dash.example"),
        ("TITAN_HTTP_ALLOWED_HOSTS", "titan.internal:3000"),
    ],
)
def test_bad_origin_and_host_lists_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({name: value}, env_file=None)
    (problem,) = raised.value.problems
    assert problem.startswith(f"{name}: expected ")
