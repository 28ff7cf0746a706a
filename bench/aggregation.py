"""Aggregation latency over venues with injected latency, one of them dead."""

from __future__ import annotations

import asyncio
import statistics
import time

import grpc

from titan_grpc.config import Settings
from titan_grpc.domain import Symbol, Ticker
from titan_grpc.errors import ExchangeUnavailable
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import start_gateway


class SlowExchange(SimulatedExchange):
    latency = 0.05
    dead = False
    hang = False

    async def ticker(self, symbol: Symbol) -> Ticker:
        if self.hang:
            await asyncio.sleep(3600)
        if self.dead:
            raise ExchangeUnavailable(f"{self.name}: connection refused", exchange=self.name)
        await asyncio.sleep(self.latency)
        return await super().ticker(symbol)


async def _median(
    stub: pb_grpc.ExchangeServiceStub, calls: int, deadline: float | None = None
) -> float:
    request = pb.GetAggregatedMarketDataRequest(symbol="BTC-USDT")
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await stub.GetAggregatedMarketData(request, timeout=deadline)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def measure(calls: int) -> dict[str, float]:
    world = SimulatedWorld(1)
    venues = {name: SlowExchange(name, world) for name in ("binance", "coinbase", "kucoin")}
    backends: dict[str, ExchangeBackend] = dict(venues)
    settings = Settings(
        grpc_address="127.0.0.1:0",
        sim_tick_ms=0,
        journal_path=":memory:",
        health_interval_seconds=0,
        # Every call asks the venues (no cache, no live feed): this measures the fan-out.
        read_max_age_ms=0,
        read_promote_reads=0,
    )
    gateway = await start_gateway(settings, world=world, backends=backends)
    figures: dict[str, float] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            figures["3 venues x 50 ms"] = await _median(stub, calls)
            venues["kucoin"].dead = True
            figures["one venue dead (refuses at once)"] = await _median(stub, calls)
            venues["kucoin"].dead, venues["kucoin"].hang = False, True
            first = "one venue hanging: the first call (200 ms deadline, venue cut 150 ms before)"
            figures[first] = await _median(stub, 1, deadline=0.2)
            later = "one venue hanging: later calls (venue suspect, skipped until it answers)"
            figures[later] = await _median(stub, max(calls // 4, 3), deadline=0.2)
    finally:
        await gateway.stop(grace=0.5)
    return figures
