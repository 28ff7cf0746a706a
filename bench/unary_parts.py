"""Where a unary GetMarketData call's time goes, in two figures (bench/NOTES.md):

- ``hot``: microseconds per call of TITAN's own Python for a cache hit (the decorated
  servicer method: request id, read path, shared answer, log line and metrics; not the
  request parser nor grpc's method look-up, which run in grpc), called in-process with a
  stand-in context, so nothing else runs between calls;
- ``cpu``: the server process's CPU time per request under h2load (user + system, from
  /proc), and its event loop thread's: TITAN and the bare grpc.aio server (registered the
  usual way, and with its methods not registered, as TITAN serves its own) in
  alternating rounds: what a call costs the whole server, grpc.aio's own work included.

    python bench/unary_parts.py hot
    python bench/unary_parts.py cpu --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    PY,
    REQUEST,
    free_port,
    load,
    process,
    sample_answer,
    titan_server,
    wait_ready,
)
from titan_grpc import logs  # noqa: E402
from titan_grpc.config import Settings  # noqa: E402
from titan_grpc.server import start_gateway  # noqa: E402


class _Context:
    """What the decorators ask of a grpc.aio context, with h2load's request metadata."""

    _metadata = (
        ("user-agent", "h2load nghttp2/1.52.0"),
        ("te", "trailers"),
        ("content-type", "application/grpc"),
    )

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailing = metadata

    def time_remaining(self) -> float | None:
        return None


async def _hot(promote_reads: int, calls: int, rounds: int) -> float:
    settings = replace(
        Settings(),
        grpc_address="127.0.0.1:0",
        journal_path=":memory:",
        sim_tick_ms=0,
        health_interval_seconds=0,
        read_promote_reads=promote_reads,
        read_max_age_ms=1000,
    )
    gateway = await start_gateway(settings)
    try:
        service, context = gateway.service, _Context()
        assert service is not None
        # As over gRPC: the method look-up has read the caller's (absent) request id, and
        # the request parser has found the body too short to break a bound.
        logs.caller_request_id.set("")
        for _ in range(100):  # a promoted feed opens, the cache fills
            await service.GetMarketData(REQUEST, context)
            await asyncio.sleep(0)
        per_call = []
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(calls):
                await service.GetMarketData(REQUEST, context)
            per_call.append((time.perf_counter() - started) / calls * 1e6)
            await asyncio.sleep(0)  # let the batched log and refreshes run, as a server would
        return statistics.median(per_call)
    finally:
        await gateway.stop(0)


def hot() -> None:
    logs.configure_logging("INFO")
    logging.getLogger().handlers[0].stream = io.StringIO()  # type: ignore[attr-defined]
    promoted = asyncio.run(_hot(20, 20_000, 7))
    cached = asyncio.run(_hot(0, 20_000, 7))
    print(f"hot: {promoted:.2f} us per call with a promoted live feed (simulated default)")
    print(f"hot: {cached:.2f} us per call answered from the cache (no live feed)")


def _cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU of process ``pid``, or of one of its threads."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu(rounds: int, requests: int) -> None:
    bare_variants = {"bare": [], "bare, methods not registered": ["--unregistered"]}
    figures: dict[str, list[tuple[float, float, float]]] = {
        name: [] for name in ("titan", *bare_variants)
    }
    answer = b""
    for _ in range(rounds):
        with titan_server() as port:
            answer = sample_answer(port)
            figures["titan"].append(_measure(port, requests))
        for name, flags in bare_variants.items():
            port = free_port()
            with process([PY, "bench/bare_server.py", f"127.0.0.1:{port}", answer.hex(), *flags]):
                wait_ready(port)
                figures[name].append(_measure(port, requests))
    for name, runs in figures.items():
        us = statistics.median(r[0] for r in runs)
        loop_us = statistics.median(r[2] for r in runs)
        rps = statistics.median(r[1] for r in runs)
        print(
            f"cpu: {name}: {us:.0f} us server CPU per request ({loop_us:.0f} on the event "
            f"loop's thread), {rps:,.0f} requests/s"
        )


def _measure(port: int, requests: int) -> tuple[float, float, float]:
    """Server CPU per request (µs), requests/s, and the event loop thread's CPU per request:
    the loop thread is the bottleneck, and its figure varies less than the throughput."""
    pid = _server_pid(port)
    load(port, 2000)
    before, loop_before = _cpu_seconds(pid), _cpu_seconds(pid, thread=pid)
    result = load(port, requests)
    loop_us = (_cpu_seconds(pid, thread=pid) - loop_before) / requests * 1e6
    return (_cpu_seconds(pid) - before) / requests * 1e6, result.rps, loop_us


def _server_pid(port: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if f"127.0.0.1:{port}" in cmdline and "h2load" not in cmdline:
                return int(entry.name)
    raise RuntimeError(f"no server process on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["hot", "cpu"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    if args.part == "hot":
        hot()
    else:
        cpu(args.rounds, args.requests)


if __name__ == "__main__":
    main()
