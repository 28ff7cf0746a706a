"""The transcoder in front of stand-in servicers: one that implements nothing (an RPC in
the proto before its code) and one whose stream stays quiet."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.http import build_app

SERVICE = pb.DESCRIPTOR.services_by_name["ExchangeService"]


async def test_unimplemented_methods_answer_501() -> None:
    app = build_app(SERVICE, pb_grpc.ExchangeServiceServicer())
    async with TestClient(TestServer(app)) as client:
        for path in ("/api/exchange/status", "/v1/quotes:stream?symbols=BTC-USDT"):
            response = await client.get(path)
            assert response.status == 501
            assert (await response.json())["code"] == 12  # UNIMPLEMENTED


class QuietStreams(pb_grpc.ExchangeServiceServicer):
    """A stream that says nothing until released, then one quote, then nothing again."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.ended = asyncio.Event()

    async def StreamQuotes(  # type: ignore[override]
        self, request: pb.StreamQuotesRequest, context: Any
    ) -> AsyncIterator[pb.StreamQuotesResponse]:
        try:
            await self.release.wait()
            yield pb.StreamQuotesResponse(quote=pb.Quote(symbol="BTC-USDT", sequence=1))
            await asyncio.Event().wait()
        finally:
            self.ended.set()


async def test_a_quiet_stream_gets_its_headers_and_keep_alives_then_ends_when_left() -> None:
    servicer = QuietStreams()
    app = build_app(SERVICE, servicer, first_event_window=0.01, keepalive=0.01)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/v1/quotes:stream?symbols=BTC-USDT")
        assert response.status == 200  # before any message
        assert response.content_type == "text/event-stream"
        assert await response.content.readline() == b": keep-alive\n"
        servicer.release.set()
        line = b""
        while not line.startswith(b"data: "):
            line = await response.content.readline()
        assert json.loads(line.removeprefix(b"data: "))["quote"]["sequence"] == "1"
        assert not servicer.ended.is_set()
        response.close()  # the client leaves
        async with asyncio.timeout(10):
            await servicer.ended.wait()
