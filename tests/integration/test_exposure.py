"""Exposure rules: plaintext tokens, the metrics address, message sizes, counting refusals,
and every configuration problem reported at once."""

from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import aiohttp
import grpc
import pytest

from tests.conftest import make_settings
from tests.helpers import expect_error
from tests.integration.test_access import issue, make_ca, pem, write
from titan_grpc.config import load_settings
from titan_grpc.errors import ConfigError
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import start_gateway
from titan_grpc.startup import startup_problems

READER = "reader-token-0123456789"
TRADER = "trader-token-0123456789"
GRANTS = load_settings(
    {"TITAN_AUTH_TOKENS": f"{READER}:read,{TRADER}:trade"}, env_file=None
).auth_grants


def scrape(port: int, token: str = "") -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, ""


async def test_tokens_beyond_loopback_need_tls_or_the_explicit_opt_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError) as caught:
        await start_gateway(make_settings(grpc_address="0.0.0.0:0", auth_grants=GRANTS))
    (problem,) = caught.value.problems
    assert problem.startswith("TITAN_GRPC_ADDRESS: bearer tokens would cross the network")
    assert READER not in problem

    caplog.set_level(logging.WARNING)
    opted_out = make_settings(
        grpc_address="0.0.0.0:0", auth_grants=GRANTS, allow_plaintext_tokens=True
    )
    gateway = await start_gateway(opted_out)
    await gateway.stop(grace=0.1)
    assert any(
        "TITAN_ALLOW_PLAINTEXT_TOKENS=true" in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    )

    ca = make_ca("exposure ca")
    key, cert = issue(ca, "localhost")
    with_tls = make_settings(
        grpc_address="0.0.0.0:0",
        auth_grants=GRANTS,
        tls_cert=write(tmp_path, "server.pem", pem(cert)),
        tls_key=write(tmp_path, "server.key", pem(key)),
    )
    gateway = await start_gateway(with_tls)
    await gateway.stop(grace=0.1)


def test_the_metrics_address_follows_the_same_rule() -> None:
    exposed = make_settings(metrics_address="0.0.0.0:9100")
    assert startup_problems(exposed) == [
        "TITAN_METRICS_ADDRESS: 0.0.0.0:9100 is not a loopback address and "
        "TITAN_AUTH_TOKENS is empty; bind to 127.0.0.1 or configure bearer tokens"
    ]
    with_tokens = make_settings(metrics_address="0.0.0.0:9100", auth_grants=GRANTS)
    assert startup_problems(with_tokens)[0].startswith(
        "TITAN_METRICS_ADDRESS: bearer tokens would cross the network in plaintext"
    )
    assert startup_problems(make_settings(metrics_address="127.0.0.1:9100")) == []


async def test_metrics_beyond_loopback_need_a_read_token() -> None:
    settings = make_settings(
        metrics_address="0.0.0.0:0", auth_grants=GRANTS, allow_plaintext_tokens=True
    )
    gateway = await start_gateway(settings)
    try:
        assert await asyncio.to_thread(scrape, gateway.metrics_port) == (401, "")
        assert (await asyncio.to_thread(scrape, gateway.metrics_port, "wrong-token-01234567"))[
            0
        ] == 401
        assert (await asyncio.to_thread(scrape, gateway.metrics_port, TRADER))[0] == 401
        status, text = await asyncio.to_thread(scrape, gateway.metrics_port, READER)
        assert status == 200 and "titan_rpc_requests_total" in text
    finally:
        await gateway.stop(grace=0.1)


async def test_metrics_beyond_loopback_are_served_over_tls_when_configured(
    tmp_path: Path,
) -> None:
    ca = make_ca("metrics ca")
    key, cert = issue(ca, "localhost")
    settings = make_settings(
        metrics_address="0.0.0.0:0",
        auth_grants=GRANTS,
        tls_cert=write(tmp_path, "server.pem", pem(cert)),
        tls_key=write(tmp_path, "server.key", pem(key)),
    )
    gateway = await start_gateway(settings)
    context = ssl.create_default_context(cadata=pem(ca[1]).decode())

    def scrape_tls(token: str) -> int:
        request = urllib.request.Request(f"https://localhost:{gateway.metrics_port}/metrics")
        request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as refused:
            return refused.code

    try:
        assert await asyncio.to_thread(scrape_tls, READER) == 200
        assert await asyncio.to_thread(scrape_tls, "wrong-token-01234567") == 401
    finally:
        await gateway.stop(grace=0.1)


async def test_metrics_count_calls_access_control_refused() -> None:
    settings = make_settings(metrics_address="127.0.0.1:0", auth_grants=GRANTS)
    gateway = await start_gateway(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            for _ in range(2):
                await expect_error(
                    stub.GetStatus(pb.GetStatusRequest()), grpc.StatusCode.UNAUTHENTICATED
                )
            await expect_error(
                stub.PlaceOrder(
                    pb.PlaceOrderRequest(), metadata=(("authorization", f"Bearer {READER}"),)
                ),
                grpc.StatusCode.PERMISSION_DENIED,
            )
            await stub.GetStatus(
                pb.GetStatusRequest(), metadata=(("authorization", f"Bearer {READER}"),)
            )
            stream = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["BTC-USDT"]))
            await expect_error(stream.read(), grpc.StatusCode.UNAUTHENTICATED)
        _, text = await asyncio.to_thread(scrape, gateway.metrics_port)
    finally:
        await gateway.stop(grace=0.1)
    for series in (
        'titan_rpc_requests_total{code="UNAUTHENTICATED",method="GetStatus"} 2.0',
        'titan_rpc_requests_total{code="OK",method="GetStatus"} 1.0',
        'titan_rpc_requests_total{code="PERMISSION_DENIED",method="PlaceOrder"} 1.0',
        'titan_rpc_requests_total{code="UNAUTHENTICATED",method="StreamQuotes"} 1.0',
    ):
        assert series in text, series


async def test_metrics_count_http_calls_and_their_refusals_too() -> None:
    settings = make_settings(
        metrics_address="127.0.0.1:0", http_address="127.0.0.1:0", auth_grants=GRANTS
    )
    gateway = await start_gateway(settings)
    assert gateway.http is not None
    url = f"http://127.0.0.1:{gateway.http.port}/api/exchange/status"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as refused:
                assert refused.status == 401
            headers = {"Authorization": f"Bearer {READER}"}
            async with session.get(url, headers=headers) as answered:
                assert answered.status == 200
        _, text = await asyncio.to_thread(scrape, gateway.metrics_port)
    finally:
        await gateway.stop(grace=0.1)
    assert 'titan_rpc_requests_total{code="UNAUTHENTICATED",method="GetStatus"} 1.0' in text
    assert 'titan_rpc_requests_total{code="OK",method="GetStatus"} 1.0' in text


async def test_a_request_over_the_receive_limit_is_refused_before_it_is_read() -> None:
    gateway = await start_gateway(make_settings(max_receive_message_bytes=64 * 1024))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            await channel.unary_unary("/titan.v1.ExchangeService/GetStatus")(b"", timeout=5)
            big = pb.ListOrdersRequest(symbol="B" * (65 * 1024)).SerializeToString()
            error = await expect_error(
                channel.unary_unary("/titan.v1.ExchangeService/ListOrders")(big, timeout=5),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            )
            assert len(error.details() or "") < 1024
    finally:
        await gateway.stop(grace=0.1)


def test_the_receive_limit_is_configurable_and_bounded() -> None:
    assert load_settings({}, env_file=None).max_receive_message_bytes == 256 * 1024
    assert (
        load_settings({"TITAN_MAX_RECEIVE_MESSAGE_BYTES": "65536"}, env_file=None)
    ).max_receive_message_bytes == 65536
    with pytest.raises(ConfigError) as caught:
        load_settings({"TITAN_MAX_RECEIVE_MESSAGE_BYTES": "10"}, env_file=None)
    assert caught.value.problems[0].startswith("TITAN_MAX_RECEIVE_MESSAGE_BYTES: must be between")


def test_every_configuration_problem_is_reported_at_once() -> None:
    environ = {
        "USE_REAL_EXCHANGES": "true",
        "TITAN_GRPC_ADDRESS": "0.0.0.0:50051",
        "TITAN_METRICS_ADDRESS": "0.0.0.0:9100",
        "TITAN_LOG_LEVEL": "chatty",
        "BINANCE_API_KEY": "binance-key-that-is-bad!",
        "COINBASE_API_KEY": "coinbasekey0123456789",
        "COINBASE_API_SECRET": "not base64 !!",
        "COINBASE_PASSPHRASE": "pass",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(environ, env_file=None, checks=startup_problems)
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "TITAN_LOG_LEVEL",
        "TITAN_GRPC_ADDRESS",
        "TITAN_METRICS_ADDRESS",
        "BINANCE_API_SECRET",
        "BINANCE_API_KEY",
        "COINBASE_API_SECRET",
    ]
    for secret in ("binance-key-that-is-bad!", "not base64 !!", "coinbasekey0123456789"):
        assert all(secret not in p for p in problems)


async def test_start_up_reports_tokens_and_venue_keys_together() -> None:
    settings = load_settings(
        {"USE_REAL_EXCHANGES": "true", "BINANCE_API_KEY": "k" * 20}, env_file=None
    )
    exposed = replace(settings, grpc_address="0.0.0.0:0")
    with pytest.raises(ConfigError) as caught:
        await start_gateway(exposed)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "TITAN_GRPC_ADDRESS",
        "BINANCE_API_SECRET",
    ]
