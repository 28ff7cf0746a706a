"""Several server processes on one port (SO_REUSEPORT), for scale-out on one host."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal

from titan_grpc.config import Settings
from titan_grpc.logs import configure_logging


def _worker(settings: Settings, workers: int) -> None:
    from titan_grpc.server import serve

    configure_logging(settings.log_level, settings.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        # Each process spends 1/workers of every venue budget: together never more.
        asyncio.run(serve(settings, share_port=True, budget_split=workers))


def run_workers(settings: Settings, workers: int) -> int:
    """N server processes on one port; SIGTERM/SIGINT are passed on to all of them."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(settings, workers)) for _ in range(workers)]
    for process in processes:
        process.start()

    def forward(signum: int, frame: object) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
    return max((abs(p.exitcode or 0) for p in processes), default=0)
