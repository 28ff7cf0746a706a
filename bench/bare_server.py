"""The baseline: a bare grpc.aio ExchangeService answering GetMarketData with a prebuilt
message of the same size as TITAN's answer (no validation, no venue, no logging).

    python bench/bare_server.py ADDRESS ANSWER_HEX [--unregistered]

Added the usual way (the generated ``add_ExchangeServiceServicer_to_server``), its 25
methods are registered with grpc. ``--unregistered`` keeps only the generic handler, as
TITAN does (service/handlers.py): grpc.aio's accept loop then waits on one pending
request per call instead of 26 (bench/NOTES.md).
"""

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


class _GenericOnly:
    """The server as the generated helper sees it, keeping only its generic handler."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        self._server.add_generic_rpc_handlers(handlers)  # type: ignore[arg-type]

    def add_registered_method_handlers(self, *_: object) -> None:
        pass


async def main(address: str, answer_hex: str, unregistered: bool) -> None:
    answer = pb.GetMarketDataResponse.FromString(bytes.fromhex(answer_hex))
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    target = _GenericOnly(server) if unregistered else server
    pb_grpc.add_ExchangeServiceServicer_to_server(Bare(answer), target)  # type: ignore[arg-type]
    server.add_insecure_port(address)
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], "--unregistered" in sys.argv[3:]))
