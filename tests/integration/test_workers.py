"""``serve --workers``: the supervisor replaces a worker that dies, and stops when they
cannot start at all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import grpc

from tests.integration.test_cli import free_port
from tests.replicas import read_log, spawn, wait_for_log, worker_pids
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc

SERVING = ") is serving"  # the supervisor's line once it knows a worker serves


def simulated_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TITAN_JOURNAL_PATH": str(tmp_path / "journal.sqlite3"),
        "TITAN_HEALTH_INTERVAL_SECONDS": "0",
    }


async def test_a_killed_worker_is_replaced_and_serves(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "workers.log"
    supervisor = spawn(port, simulated_env(tmp_path), log, workers=2)
    try:
        await wait_for_log(log, SERVING, 2, supervisor)
        first = worker_pids(supervisor.pid)
        assert len(first) == 2, first
        os.kill(first[0], signal.SIGKILL)
        await wait_for_log(log, SERVING, 3, supervisor)  # the replacement serves
        assert "ended (signal 9); starting another" in read_log(log)
        now = worker_pids(supervisor.pid)
        assert len(now) == 2 and first[1] in now and first[0] not in now, (first, now)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            status = await pb_grpc.ExchangeServiceStub(channel).GetStatus(
                pb.GetStatusRequest(), timeout=10
            )
        assert status.mode == pb.MODE_SIMULATED
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(60)
    assert code == 0, read_log(log)[-3000:]
    assert worker_pids(supervisor.pid) == []


def test_workers_that_cannot_start_stop_the_supervisor(tmp_path: Path) -> None:
    # The port is held without SO_REUSEPORT: every worker fails to bind.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        command = [sys.executable, "-m", "titan_grpc", "serve", "--address"]
        command += [f"127.0.0.1:{port}", "--env-file", "", "--workers", "2"]
        done = subprocess.run(
            command, env=simulated_env(tmp_path), capture_output=True, text=True, timeout=120
        )
    assert done.returncode != 0
    assert "could not start" in done.stderr and "stopping" in done.stderr
    assert "starting another" not in done.stderr  # no restart loop for a start-up error
