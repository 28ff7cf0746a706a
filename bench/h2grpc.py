"""Driving a gRPC unary method with h2load (nghttp2-client) and reading its request log."""

from __future__ import annotations

import statistics
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LoadResult:
    requests: int
    failed: int
    rps: float  # h2load's own figure
    p50_ms: float
    p99_ms: float


def grpc_frame(message: bytes) -> bytes:
    """One length-prefixed gRPC message (uncompressed)."""
    return struct.pack(">?I", False, len(message)) + message


def h2load(
    url: str, message: bytes, *, requests: int, clients: int, streams: int, threads: int = 1
) -> LoadResult:
    with tempfile.TemporaryDirectory() as folder:
        body = Path(folder) / "body.bin"
        body.write_bytes(grpc_frame(message))
        log = Path(folder) / "requests.log"
        run = subprocess.run(
            [
                "h2load",
                "-n",
                str(requests),
                "-c",
                str(clients),
                "-m",
                str(streams),
                "-t",
                str(threads),
                "-d",
                str(body),
                "-H",
                "content-type: application/grpc",
                "-H",
                "te: trailers",
                "--log-file",
                str(log),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        latencies = []
        for line in log.read_text().splitlines():
            _start, status, elapsed_us = line.split("\t")[:3]
            if status == "200":
                latencies.append(int(elapsed_us) / 1000)
    # "finished in 578.23ms, 3458.74 req/s, 1.2MB/s"
    finished = next(line for line in run.stdout.splitlines() if line.startswith("finished in"))
    rate = float(finished.split(",")[1].strip().split()[0])
    failed = next(
        int(line.split("failed")[0].split(",")[-1].strip())
        for line in run.stdout.splitlines()
        if line.startswith("requests:")
    )
    quantiles = statistics.quantiles(latencies, n=100)
    return LoadResult(requests, failed, rate, statistics.median(latencies), quantiles[98])
