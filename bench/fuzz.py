"""The fuzz soak for make bench: tests/fuzzing.py's cases, many more of them, with the server's
memory sampled as it goes, then 12 concurrent ListOrders of a million states each (the
request that once took the server past 1 GB), just under and over the receive limit."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import grpc

from tests import fuzzing
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

SEED = 1600
WARM_UP = 500
CONCURRENCY = 8
BURST = 12
UNDER_LIMIT_STATES = 260_000  # 1 byte each on the wire: just under 256 KiB


@dataclass
class SoakFigures:
    requests: int
    seconds: float
    start_kib: int
    warm_kib: int
    samples: list[tuple[int, int]] = field(default_factory=list)  # (requests sent, VmRSS KiB)
    peak_kib: int = 0
    burst_codes: dict[str, int] = field(default_factory=dict)
    after_burst_kib: int = 0
    report: fuzzing.Report = field(default_factory=fuzzing.Report)
    serving: bool = False
    log_problems: int = 0


def _burst(port: int, states: int) -> dict[str, int]:
    """``BURST`` ListOrders at once, each with ``states`` states (1 byte each on the wire)."""
    body = pb.ListOrdersRequest(states=[pb.JOURNAL_STATE_ACCEPTED] * states).SerializeToString()
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def one() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                channel.unary_unary("/titan.v1.ExchangeService/ListOrders")(body, timeout=30)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()  # type: ignore[attr-defined]
        with lock:
            codes[code.name] = codes.get(code.name, 0) + 1

    threads = [threading.Thread(target=one) for _ in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def soak(requests: int, checkpoints: int = 10) -> SoakFigures:
    with fuzzing.ServerProcess() as server:
        start = server.memory_kib()
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            fuzzing.run(channel, fuzzing.cases(SEED + 1, WARM_UP), CONCURRENCY)
            figures = SoakFigures(requests, 0.0, start, server.memory_kib())
            all_cases = fuzzing.cases(SEED, requests)
            step = max(1, requests // checkpoints)
            began = time.perf_counter()
            sent = 0
            while sent < requests:
                chunk = [case for _, case in zip(range(step), all_cases, strict=False)]
                part = fuzzing.run(channel, iter(chunk), CONCURRENCY)
                sent += part.calls
                figures.report.calls += part.calls
                figures.report.codes.update(part.codes)
                figures.report.by_kind.update(part.by_kind)
                figures.report.violations += part.violations
                figures.report.longest_error = max(figures.report.longest_error, part.longest_error)
                figures.samples.append((sent, server.memory_kib()))
            figures.seconds = time.perf_counter() - began
            # Just under the 256 KiB receive limit (read, then refused at the edge), then
            # a million states (refused before it is read).
            figures.burst_codes = _burst(server.port, UNDER_LIMIT_STATES)
            for code, count in _burst(server.port, 1_000_000).items():
                figures.burst_codes[code] = figures.burst_codes.get(code, 0) + count
            figures.after_burst_kib = server.memory_kib()
            figures.peak_kib = server.memory_kib("VmHWM")
            figures.serving = fuzzing.serving(channel)
        figures.log_problems = len(server.problems)
    return figures
