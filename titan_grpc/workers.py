"""Several server processes on one port (SO_REUSEPORT), for scale-out on one host.

The parent supervises them: SIGTERM/SIGINT are passed on to every worker; a worker that
dies while serving (a crash, the OOM killer, a SIGKILL) is started again, after a pause
that doubles while its replacements keep dying before they serve; a worker that cannot
start while no worker has served yet (a bad address, a bad journal) stops them all, as a
single process would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.synchronize import Event

from titan_grpc.config import Settings
from titan_grpc.logs import configure_logging

log = logging.getLogger("titan_grpc.workers")

# Pauses before starting a slot's worker again, by how many of its workers in a row died
# before they served; after the last, the supervisor gives up and stops everything.
RESTART_PAUSES_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)
# How often a starting worker is checked for readiness (to log it and count it as served).
READY_POLL_SECONDS = 0.1


def _worker(settings: Settings, workers: int, ready: Event) -> None:
    from titan_grpc.server import serve

    configure_logging(settings.log_level, settings.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        # Each process spends 1/workers of every venue budget: together never more.
        asyncio.run(serve(settings, share_port=True, budget_split=workers, on_ready=ready.set))


@dataclass
class _Slot:
    process: SpawnProcess
    ready: Event
    failures: int = 0  # its workers in a row that died before serving
    restart_at: float | None = None  # when a dead worker's replacement is due
    announced: bool = False  # its readiness logged


def run_workers(settings: Settings, workers: int) -> int:
    """N server processes on one port, supervised until SIGTERM/SIGINT."""
    context = multiprocessing.get_context("spawn")
    slots = [_start(context, settings, workers) for _ in range(workers)]
    stopping = False
    wake_read, wake_write = os.pipe()  # a signal must end a pause at once

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        with contextlib.suppress(OSError):  # a late signal, after the pipe is closed
            os.write(wake_write, b"\0")
        for slot in slots:
            if slot.process.pid is not None and slot.process.exitcode is None:
                os.kill(slot.process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    served = False  # whether any worker has served yet
    failed: int | None = None
    while not stopping and failed is None:
        running = [slot.process.sentinel for slot in slots if slot.restart_at is None]
        due = [slot.restart_at - time.monotonic() for slot in slots if slot.restart_at is not None]
        if any(slot.restart_at is None and not slot.announced for slot in slots):
            due.append(READY_POLL_SECONDS)
        wait([wake_read, *running], max(min(due), 0.0) if due else None)
        for index, slot in enumerate(slots):
            if not slot.announced and slot.restart_at is None and slot.ready.is_set():
                slot.announced = served = True
                log.info("worker %d (pid %s) is serving", index, slot.process.pid)
        for index, slot in enumerate(slots):
            if stopping:
                break
            if slot.restart_at is None and slot.process.exitcode is not None:
                failed = _worker_ended(index, slot, served)
                if failed is not None:
                    forward(signal.SIGTERM, None)
                    break
            elif slot.restart_at is not None and slot.restart_at <= time.monotonic():
                replacement = _start(context, settings, workers)
                slot.process, slot.ready = replacement.process, replacement.ready
                slot.restart_at, slot.announced = None, False
                log.info("worker %d started again (pid %s)", index, slot.process.pid)
    for slot in slots:
        if slot.restart_at is None:
            slot.process.join()
    os.close(wake_read)
    os.close(wake_write)
    if failed is not None:
        return failed
    return max((abs(s.process.exitcode or 0) for s in slots if s.restart_at is None), default=0)


def _start(context: SpawnContext, settings: Settings, workers: int) -> _Slot:
    ready = context.Event()
    process = context.Process(target=_worker, args=(settings, workers, ready))
    process.start()
    return _Slot(process, ready)


def _worker_ended(index: int, slot: _Slot, served: bool) -> int | None:
    """Schedule the replacement of a worker that ended; the exit code to stop with when
    it must not be replaced."""
    code = slot.process.exitcode or 0
    if not slot.ready.is_set():
        if not served:
            log.error("worker %d could not start (exit code %s); stopping", index, code)
            return abs(code) or 1
        slot.failures += 1
        if slot.failures > len(RESTART_PAUSES_SECONDS):
            log.error(
                "worker %d: %d replacements in a row died before serving; stopping",
                index,
                slot.failures,
            )
            return abs(code) or 1
        pause = RESTART_PAUSES_SECONDS[slot.failures - 1]
    else:
        slot.failures, pause = 0, RESTART_PAUSES_SECONDS[0]
    how = f"signal {-code}" if code < 0 else f"exit code {code}"
    log.warning(
        "worker %d (pid %s) ended (%s); starting another in %.1fs",
        index,
        slot.process.pid,
        how,
        pause,
    )
    slot.restart_at = time.monotonic() + pause
    return None
