"""Fan-out: many StreamQuotes subscribers on one symbol, TITAN vs a bare grpc.aio stream.

Three roles, each its own process so the server's CPU is measured apart from the
clients':

* ``titan``: the TITAN gateway (hub, service, conversion, logging, metrics) over a venue
  whose quote feed ticks at a fixed rate — every tick a new quote stamped with the time
  it was made;
* ``bare``: a grpc.aio server whose StreamQuotes hands every subscriber the same prebuilt
  message each tick (the least a server-stream fan-out can do);
* ``client``: opens the subscribers (plus, optionally, stalled ones that never read) and
  records delivered messages and update-to-client latency (client clock minus the
  quote's ``source.received_time``; same machine, same clock).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from titan_grpc.config import Settings  # noqa: E402
from titan_grpc.domain import Quote, Symbol  # noqa: E402
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld  # noqa: E402
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb  # noqa: E402
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc  # noqa: E402

REQUEST = pb.StreamQuotesRequest(symbols=["BTC-USDT"], exchanges=["binance"])


async def paced(rate: float) -> AsyncIterator[int]:
    """Tick numbers at ``rate`` per second, on schedule (no drift)."""
    loop = asyncio.get_running_loop()
    interval, due, tick = 1 / rate, loop.time(), 0
    while True:
        tick += 1
        yield tick
        due += interval
        await asyncio.sleep(max(0.0, due - loop.time()))


class PacedVenue(SimulatedExchange):
    """A venue whose quote feed ticks at a fixed rate; each quote differs from the last."""

    def __init__(self, world: SimulatedWorld, rate: float) -> None:
        super().__init__("binance", world)
        self._rate = rate

    async def watch_quotes(self, symbol: Symbol) -> AsyncIterator[Quote]:
        async for tick in paced(self._rate):
            bid = Decimal(43000) + Decimal(tick % 1000) / 100
            yield Quote(
                exchange="binance",
                symbol=symbol,
                venue_symbol="BTCUSDT",
                bid=bid,
                bid_size=Decimal("1.25"),
                ask=bid + Decimal("0.01"),
                ask_size=Decimal("0.5"),
                last=bid,
                simulated=True,
                venue_time=None,
                received_time=datetime.now(UTC),
            )


async def serve_titan(port: int, rate: float) -> None:
    from titan_grpc.server import settle_heap, start_gateway

    world = SimulatedWorld(7)
    settings = replace(
        Settings(),
        grpc_address=f"127.0.0.1:{port}",
        sim_tick_ms=0,
        journal_path=":memory:",
        health_interval_seconds=0,
    )
    gateway = await start_gateway(
        settings, world=world, backends={"binance": PacedVenue(world, rate)}
    )
    settle_heap()  # as `serve` does
    print("ready", flush=True)
    await gateway.server.wait_for_termination()


class BareStreams(pb_grpc.ExchangeServiceServicer):
    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._latest = pb.StreamQuotesResponse()
        self._version = 0
        self._changed = asyncio.Condition()

    async def pump(self) -> None:
        async for tick in paced(self._rate):
            quote = pb.Quote(
                exchange="binance",
                symbol="BTC-USDT",
                venue_symbol="BTCUSDT",
                bid=f"{43000 + tick % 1000 / 100:.2f}",
                bid_size="1.25",
                ask=f"{43000.01 + tick % 1000 / 100:.2f}",
                ask_size="0.5",
                last=f"{43000 + tick % 1000 / 100:.2f}",
                sequence=tick,
                source=pb.Source(exchange="binance", simulated=True),
            )
            quote.source.received_time.GetCurrentTime()
            async with self._changed:
                self._latest, self._version = pb.StreamQuotesResponse(quote=quote), tick
                self._changed.notify_all()

    async def StreamQuotes(
        self, request: pb.StreamQuotesRequest, context: Any
    ) -> AsyncIterator[pb.StreamQuotesResponse]:
        seen = self._version
        while True:
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._newer_than, seen))
                seen, message = self._version, self._latest
            yield message

    def _newer_than(self, version: int) -> bool:
        return self._version > version


async def serve_bare(port: int, rate: float) -> None:
    servicer = BareStreams(rate)
    server = grpc.aio.server()
    pb_grpc.add_ExchangeServiceServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    gc.collect()
    gc.freeze()  # the same heap tuning TITAN's `serve` applies, for a fair baseline
    pump = asyncio.create_task(servicer.pump())
    print("ready", flush=True)
    try:
        await server.wait_for_termination()
    finally:
        pump.cancel()


async def run_clients(
    port: int, subscribers: int, stalled: int, warmup: float, duration: float, channels: int
) -> dict[str, Any]:
    opened = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(channels)]
    stubs = [pb_grpc.ExchangeServiceStub(channel) for channel in opened]
    counting = False
    delivered = 0
    latencies: list[float] = []
    started = asyncio.Event()
    ready = 0

    async def subscriber(index: int) -> None:
        nonlocal delivered, ready
        call = stubs[index % channels].StreamQuotes(REQUEST)
        first = True
        async for message in call:
            if first:
                first, ready = False, ready + 1
                if ready == subscribers:
                    started.set()
            if counting and message.HasField("quote"):
                delivered += 1
                sent = message.quote.source.received_time
                latencies.append(time.time() - (sent.seconds + sent.nanos / 1e9))

    stalled_calls = [stubs[i % channels].StreamQuotes(REQUEST) for i in range(stalled)]
    tasks = [asyncio.create_task(subscriber(i)) for i in range(subscribers)]
    await asyncio.wait_for(started.wait(), 120)
    await asyncio.sleep(warmup)
    counting, began = True, time.perf_counter()
    cpu_began = time.process_time()
    await asyncio.sleep(duration)
    counting = False
    elapsed = time.perf_counter() - began
    client_cpu = time.process_time() - cpu_began
    for task in tasks:
        task.cancel()
    for call in stalled_calls:
        call.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in opened:
        await channel.close()
    latencies.sort()

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0
        )

    return {
        "delivered": delivered,
        "seconds": elapsed,
        "rate": delivered / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
        "client_cpu_share": client_cpu / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["titan", "bare", "client"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--stalled", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--channels", type=int, default=10)
    args = parser.parse_args()
    if args.role == "titan":
        asyncio.run(serve_titan(args.port, args.rate))
    elif args.role == "bare":
        asyncio.run(serve_bare(args.port, args.rate))
    else:
        figures = asyncio.run(
            run_clients(
                args.port, args.subscribers, args.stalled, args.warmup, args.duration, args.channels
            )
        )
        print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
