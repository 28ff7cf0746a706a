"""The transcoder in front of a servicer that implements nothing (an RPC in the proto
before its code): 501 with a google.rpc.Status, unary and streaming alike."""

from __future__ import annotations

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
