"""The baseline: a bare grpc.aio ExchangeService answering GetMarketData with a prebuilt
message of the same size as TITAN's answer (no validation, no venue, no logging)."""

from __future__ import annotations

import asyncio
import sys

import grpc

from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc


class Bare(pb_grpc.ExchangeServiceServicer):
    def __init__(self, answer: pb.GetMarketDataResponse) -> None:
        self._answer = answer

    async def GetMarketData(
        self, request: pb.GetMarketDataRequest, context: object
    ) -> pb.GetMarketDataResponse:
        return self._answer


async def main(address: str, answer_hex: str) -> None:
    answer = pb.GetMarketDataResponse.FromString(bytes.fromhex(answer_hex))
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    pb_grpc.add_ExchangeServiceServicer_to_server(Bare(answer), server)
    server.add_insecure_port(address)
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
