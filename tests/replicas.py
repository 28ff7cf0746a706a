"""Helpers for tests that run several TITAN server processes against one venue."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TRADING = "titan.v1.ExchangeService/trading"


async def trading_status(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=TRADING), timeout=10)
    return int(answer.status)


async def wait_for_trading(channel: grpc.aio.Channel, seconds: float = 120) -> None:
    """Return once trading health says SERVING (start-up reconciliation finished)."""
    stub = health_pb2_grpc.HealthStub(channel)
    watch = stub.Watch(health_pb2.HealthCheckRequest(service=TRADING), timeout=seconds)
    async for update in watch:
        if update.status == health_pb2.HealthCheckResponse.SERVING:
            watch.cancel()
            return
    raise AssertionError("trading never became SERVING")
