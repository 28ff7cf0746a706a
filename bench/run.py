"""make bench: every benchmark in one run, figures and machine written to bench/RESULTS.md.

Sections: unary throughput vs a bare grpc.aio server (h2load), scale-out with 1 and 2
processes, aggregation latency over slow and dead venues, and adapter CPU per call vs
ccxt against the same local fake Binance. Ratios compare runs made here, now.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.h2grpc import LoadResult, h2load  # noqa: E402
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb  # noqa: E402
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc  # noqa: E402

PY = sys.executable
REQUEST = pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance")
METHOD_URL = "http://127.0.0.1:{port}/titan.v1.ExchangeService/GetMarketData"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=60)


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def titan_server(workers: int = 1, log_level: str = "INFO") -> Iterator[int]:
    port = free_port()
    journal = tempfile.mkdtemp(prefix="titan-bench-")
    env = {
        "TITAN_SIM_TICK_MS": "0",
        "TITAN_LOG_LEVEL": log_level,
        "TITAN_JOURNAL_PATH": f"{journal}/j.sqlite3",
        "TITAN_HEALTH_INTERVAL_SECONDS": "0",
    }
    args = [
        PY,
        "-m",
        "titan_grpc",
        "serve",
        "--address",
        f"127.0.0.1:{port}",
        "--env-file",
        "",
        "--workers",
        str(workers),
    ]
    with process(args, env):
        wait_ready(port)
        yield port


def sample_answer(port: int) -> bytes:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = pb_grpc.ExchangeServiceStub(channel).GetMarketData(REQUEST, timeout=10)
    return answer.SerializeToString()


def load(
    port: int, requests: int, clients: int = 4, streams: int = 16, threads: int = 1
) -> LoadResult:
    url = METHOD_URL.format(port=port)
    h2load(
        url,
        REQUEST.SerializeToString(),
        requests=min(2000, requests),
        clients=clients,
        streams=streams,
        threads=threads,
    )  # warm-up
    return h2load(
        url,
        REQUEST.SerializeToString(),
        requests=requests,
        clients=clients,
        streams=streams,
        threads=threads,
    )


def row(name: str, result: LoadResult) -> str:
    figures = f"{result.rps:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.failed}"
    return f"| {name} | {figures} |"


def bench_unary(requests: int) -> list[str]:
    with titan_server() as port:
        answer = sample_answer(port)
        titan = load(port, requests)
    with titan_server(log_level="WARNING") as port:
        quiet = load(port, requests)
    port = free_port()
    with process([PY, "bench/bare_server.py", f"127.0.0.1:{port}", answer.hex()]):
        wait_ready(port)
        bare = load(port, requests)
    ratio = titan.rps / bare.rps
    return [
        "## Unary GetMarketData throughput (simulated venue) vs bare grpc.aio",
        "",
        f"h2load, {requests:,} requests, 4 connections x 16 streams, 1 client thread, "
        "after a warm-up; "
        f"answer size {len(answer)} bytes for both servers.",
        "",
        "| server | requests/s | p50 ms | p99 ms | failed |",
        "|---|---:|---:|---:|---:|",
        row("bare grpc.aio (prebuilt answer)", bare),
        row("TITAN, INFO request log (default)", titan),
        row("TITAN, TITAN_LOG_LEVEL=WARNING", quiet),
        "",
        f"**Ratio TITAN/bare: {ratio:.0%}** (target >= 90%; "
        f"with the request log off: {quiet.rps / bare.rps:.0%}).",
        "",
    ]


def bench_scale_out(requests: int) -> list[str]:
    lines = [
        "## Scale-out: server processes sharing the port (SO_REUSEPORT)",
        "",
        f"h2load, {requests:,} requests, 8 connections x 16 streams, 2 client threads.",
        "",
        "| processes | requests/s | p50 ms | p99 ms | failed |",
        "|---|---:|---:|---:|---:|",
    ]
    results = {}
    for workers in (1, 2):
        with titan_server(workers=workers) as port:
            results[workers] = load(port, requests, clients=8, threads=2)
        lines.append(row(str(workers), results[workers]))
    lines += [
        "",
        f"2 processes / 1 process: {results[2].rps / results[1].rps:.2f}x "
        f"(the machine has {os.cpu_count()} cores, shared with h2load).",
        "",
    ]
    return lines


def bench_aggregation(calls: int) -> list[str]:
    from bench.aggregation import measure

    figures = asyncio.run(measure(calls))
    return [
        "## Aggregation latency: GetAggregatedMarketData over three venues",
        "",
        f"Three simulated venues behind an injected 50 ms latency each; "
        f"{calls} sequential calls, median.",
        "",
        "| case | median ms | ratio to the slowest venue (50 ms) |",
        "|---|---:|---:|",
        *[f"| {name} | {ms:.1f} | {ms / 50:.2f}x |" for name, ms in figures.items()],
        "",
        "Target <= 1.2x the slowest venue.",
        "",
    ]


def bench_adapters(calls: int) -> list[str]:
    from bench.adapters import measure

    figures = asyncio.run(measure(calls))
    lines = [
        "## Adapter CPU per call: TITAN's Binance adapter vs ccxt (async)",
        "",
        f"Both against the same local fake Binance in another process; client-side CPU "
        f"(time.process_time) per call over {calls} calls after warm-up; sign + send + parse.",
        "",
        "| call | TITAN ms CPU | ccxt ms CPU | TITAN / ccxt |",
        "|---|---:|---:|---:|",
    ]
    for name, (titan_ms, ccxt_ms) in figures.items():
        lines.append(f"| {name} | {titan_ms:.3f} | {ccxt_ms:.3f} | {titan_ms / ccxt_ms:.2f} |")
    lines += ["", "Target <= 0.5x ccxt's CPU per call.", ""]
    return lines


def machine() -> list[str]:
    import aiohttp
    import google.protobuf

    h2 = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip()
    return [
        f"- Run: {datetime.now(UTC).isoformat(timespec='seconds')}",
        f"- CPU cores: {os.cpu_count()}; {platform.machine()}; {platform.platform()}",
        f"- Python {platform.python_version()}; grpcio {grpc.__version__}; "
        f"protobuf {google.protobuf.__version__}; aiohttp {aiohttp.__version__}",
        f"- Load generator: {h2}",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument("--output", default=str(ROOT / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    scale = 1 if not args.quick else 10
    started = time.perf_counter()
    sections = [
        bench_unary(30_000 // scale),
        bench_scale_out(30_000 // scale),
        bench_aggregation(40 // min(scale, 4)),
        bench_adapters(400 // scale),
    ]
    header = [
        "# TITAN benchmark results",
        "",
        "Produced by `make bench` (`bench/run.py`).",
        "",
        "## Machine",
        "",
        *machine(),
    ]
    notes_file = ROOT / "bench" / "NOTES.md"
    notes = notes_file.read_text().splitlines() if notes_file.exists() else []
    text = "\n".join(header + [line for section in sections for line in section] + notes) + "\n"
    Path(args.output).write_text(text)
    print(text)
    print(f"(bench took {time.perf_counter() - started:.0f}s)", file=sys.stderr)


if __name__ == "__main__":
    main()
