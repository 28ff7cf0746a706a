"""Helpers for tests that run several TITAN server processes against one venue."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TRADING = "titan.v1.ExchangeService/trading"
ROOT = Path(__file__).resolve().parent.parent


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


def spawn(port: int, env: dict[str, str], log: Path, workers: int = 1) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "titan_grpc", "serve", "--address", f"127.0.0.1:{port}"]
    command += ["--env-file", "", "--workers", str(workers)]
    with log.open("wb") as sink:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink)


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")


async def wait_for_log(log: Path, text: str, count: int, process: subprocess.Popen[bytes]) -> None:
    """Wait (polling the log file) until ``text`` appeared ``count`` times."""
    for _ in range(6000):
        if read_log(log).count(text) >= count:
            return
        if process.poll() is not None:
            break
        await asyncio.sleep(0.02)
    raise AssertionError(f"servers did not start:\n{read_log(log)[-4000:]}")


def worker_pids(parent: int) -> list[int]:
    """The ``serve --workers`` worker processes (not multiprocessing's resource tracker)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found
