"""Prometheus metrics endpoint, request ids and JSON logs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.request
from dataclasses import replace
from typing import Any

import grpc
import pytest

from tests.fakes.binance import FakeBinance
from tests.integration.test_binance import real_settings
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.logs import JsonFormatter, RequestIdFilter
from titan_grpc.server import start_gateway
from titan_grpc.service import base


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


async def test_metrics_endpoint_exposes_the_listed_series() -> None:
    fake = FakeBinance()
    await fake.start()
    gateway = await start_gateway(replace(real_settings(fake.url), metrics_address="127.0.0.1:0"))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            await stub.GetMarketData(pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance"))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetMarketData(pb.GetMarketDataRequest(symbol="??", exchange="binance"))
            stream = stub.StreamQuotes(
                pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["mock"])
            )
            await stream.read()
            text = await asyncio.to_thread(scrape, gateway.metrics_port)
            stream.cancel()
    finally:
        await gateway.stop(grace=0.5)
        await fake.stop()
    for series in (
        'titan_rpc_requests_total{code="OK",method="GetMarketData"} 1.0',
        'titan_rpc_requests_total{code="INVALID_ARGUMENT",method="GetMarketData"} 1.0',
        'titan_rpc_duration_seconds_bucket{le="0.5",method="GetMarketData"}',
        'titan_active_streams{method="StreamQuotes"} 1.0',
        'titan_stream_subscriptions{exchange="mock"} 1.0',
        'titan_upstream_requests_total{endpoint="GET /api/v3/ticker/24hr",'
        'exchange="binance",status="200"} 1.0',
        'titan_upstream_duration_seconds_count{exchange="binance"}',
        'titan_rate_limit_budget_used_ratio{exchange="binance"}',
        'titan_venue_healthy{exchange="binance"} 1.0',
        "titan_journal_ambiguous_orders 0.0",
    ):
        assert series in text, series


async def test_request_ids_are_echoed_and_logged(
    stub: pb_grpc.ExchangeServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="titan_grpc.rpc"):
        call = stub.GetStatus(pb.GetStatusRequest(), metadata=(("x-request-id", "trace-42"),))
        await call
        assert ("x-request-id", "trace-42") in tuple(await call.trailing_metadata())
        failing = stub.GetMarketData(pb.GetMarketDataRequest(symbol="", exchange="binance"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await failing
        generated = dict(caught.value.trailing_metadata())["x-request-id"]
        # This process's random prefix and a counter: "3fa2b1c0-42".
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9]+", generated), generated
    ids = {getattr(r, "request_id", None) for r in caplog.records if r.name == "titan_grpc.rpc"}
    assert {"trace-42", generated} <= ids


async def test_each_call_gets_its_own_callers_id_streams_and_refusals_included(
    stub: pb_grpc.ExchangeServiceStub,
) -> None:
    # The id is read while grpc looks the method up (service/handlers.py): no call may
    # see another's, whether it sent one or not.
    request = pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance")
    calls = [
        stub.GetMarketData(request, metadata=(("x-request-id", f"many-{n}"),)) for n in range(5)
    ]
    plain = stub.GetMarketData(request)
    await asyncio.gather(*calls, plain)
    for n, call in enumerate(calls):
        assert dict(await call.trailing_metadata())["x-request-id"] == f"many-{n}"
    assert not dict(await plain.trailing_metadata())["x-request-id"].startswith("many-")

    stream = stub.StreamQuotes(
        pb.StreamQuotesRequest(exchanges=["binance"], symbols=["NOT A SYMBOL"]),
        metadata=(("x-request-id", "stream-7"),),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stream.read()
    assert dict(caught.value.trailing_metadata())["x-request-id"] == "stream-7"
    # Refused by the request parser's bounds check, before the servicer runs.
    refused = stub.GetMarketData(
        pb.GetMarketDataRequest(symbol="X" * 2000, exchange="binance"),
        metadata=(("x-request-id", "too-long-1"),),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await refused
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "longer than 1024 characters" in (caught.value.details() or "")
    assert dict(caught.value.trailing_metadata())["x-request-id"] == "too-long-1"
    too_many = stub.StreamQuotes(
        pb.StreamQuotesRequest(symbols=["BTC-USDT"] * 65),
        metadata=(("x-request-id", "too-many-1"),),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await too_many.read()
    assert "at most 64 values" in (caught.value.details() or "")
    assert dict(caught.value.trailing_metadata())["x-request-id"] == "too-many-1"


async def test_grpc_calls_do_not_decode_their_metadata_twice(
    stub: pb_grpc.ExchangeServiceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The id is taken from the metadata grpc decoded to find the method; asking the
    # call's context again costs each call about a twentieth of a cache hit's server time
    # (bench/NOTES.md). Registering the methods with grpc would silently bypass that.
    fallbacks: list[object] = []
    read_again = base.request_id_in

    def counting(metadata: Any) -> str:
        fallbacks.append(metadata)
        return read_again(metadata)

    monkeypatch.setattr(base, "request_id_in", counting)
    request = pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance")
    call = stub.GetMarketData(request, metadata=(("x-request-id", "once-1"),))
    await call
    await stub.GetMarketData(request)
    stream = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["NOT A SYMBOL"]))
    with pytest.raises(grpc.aio.AioRpcError):
        await stream.read()
    assert dict(await call.trailing_metadata())["x-request-id"] == "once-1"
    assert fallbacks == []  # (HTTP calls read their context's: test_http.py checks those ids)


def test_json_log_lines_carry_the_request_id() -> None:
    record = logging.LogRecord(
        "titan_grpc.rpc", logging.INFO, __file__, 1, "rpc=%s code=OK", ("GetStatus",), None
    )
    record.request_id = "abc"
    line = json.loads(JsonFormatter().format(record))
    assert (line["message"], line["request_id"], line["level"]) == (
        "rpc=GetStatus code=OK",
        "abc",
        "INFO",
    )
