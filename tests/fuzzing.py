"""A deterministic fuzzer for every RPC of the contract, shared by the fuzz test (make test)
and the longer run in make bench.

Cases, all drawn from one seeded ``random.Random``:

- ``fields``: every field of the request set at random (odd strings, any Unicode,
  out-of-range enums and numbers, nested messages filled the same way);
- ``huge``: one string field of up to ~1.5 MB (over the receive limit as often as not);
- ``repeated``: one repeated field with up to 300,000 values;
- ``raw``: random bytes as the body;
- ``bad_utf8``: a string field holding invalid UTF-8;
- ``nested``: 100,000 nested group openings (a parser recursion bomb).

The server runs in a subprocess so its memory can be read from /proc/<pid>/status.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
SERVICE = pb.DESCRIPTOR.services_by_name["ExchangeService"]
NEVER = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
MAX_ERROR_BYTES = 1024
KINDS = ("fields", "fields", "fields", "huge", "repeated", "raw", "bad_utf8", "nested")

INTERESTING = [
    "",
    " ",
    "BTC-USDT",
    "btcusdt",
    "ETH/BTC",
    "DOGE-USDT",
    "binance",
    "coinbase",
    "kucoin",
    "mock",
    "MOCK",
    "0",
    "0.001",
    "30000",
    "-1",
    "NaN",
    "-Infinity",
    "1e400",
    "1e-400",
    "9" * 60,
    "0." + "0" * 40 + "1",
    "٣.٥",
    "３",
    "SIM-BIN-00000001",
    "\x00",
    "€",
    "abc\n",
    "a" * 300,
    "ß" * 40,
]
# Printable and not: ASCII, Latin-1, BMP (no surrogates), astral.
_CODE_POINTS = ((0, 0x7F), (0x80, 0xFF), (0x100, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF))


@dataclass(frozen=True, slots=True)
class Case:
    method: MethodDescriptor
    kind: str
    body: bytes


@dataclass
class Report:
    calls: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    longest_error: int = 0

    def note(self, case: Case, code: grpc.StatusCode, details: str) -> None:
        self.calls += 1
        self.codes[code.name] += 1
        self.by_kind[case.kind] += 1
        size = len(details.encode())
        self.longest_error = max(self.longest_error, size)
        if code in NEVER:
            self.violations.append(f"{case.method.name}/{case.kind}: {code.name} {details[:200]}")
        if size >= MAX_ERROR_BYTES:
            self.violations.append(f"{case.method.name}/{case.kind}: {size}-byte error")


# ---- cases ---------------------------------------------------------------------------


def random_text(rng: random.Random, size: int) -> str:
    chars = []
    for _ in range(size):
        low, high = rng.choice(_CODE_POINTS)
        chars.append(chr(rng.randint(low, high)))
    return "".join(chars)


def _scalar(rng: random.Random, fd: FieldDescriptor) -> Any:
    if fd.type == FieldDescriptor.TYPE_STRING:
        return (
            rng.choice(INTERESTING) if rng.random() < 0.6 else random_text(rng, rng.randint(0, 60))
        )
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.randint(0, 60))
    if fd.type == FieldDescriptor.TYPE_ENUM:
        return rng.choice([rng.randint(-3, 12), 2**31 - 1, -(2**31)])
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if fd.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return rng.choice([0, 1, rng.randint(0, 2000), 2**32 - 1])
    if fd.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return rng.choice([0, 1, rng.randint(0, 2000), 2**64 - 1])
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice([0.0, -1.0, 1e300, float("nan"), float("inf")])
    if fd.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return rng.choice([0, -1, rng.randint(-(2**63), 2**63 - 1)])
    return rng.choice([0, -1, rng.randint(-(2**31), 2**31 - 1)])


def random_message(rng: random.Random, descriptor: Descriptor, depth: int = 0) -> Message:
    message = message_factory.GetMessageClass(descriptor)()
    for fd in descriptor.fields:
        if rng.random() < 0.3:
            continue
        if fd.message_type is not None:
            if depth > 3 or fd.message_type.GetOptions().map_entry:
                continue
            count = rng.randint(0, 3) if fd.is_repeated else 1
            target = getattr(message, fd.name)
            for _ in range(count):
                item = random_message(rng, fd.message_type, depth + 1)
                if fd.is_repeated:
                    target.add().MergeFrom(item)
                else:
                    target.MergeFrom(item)
            continue
        try:
            if fd.is_repeated:
                getattr(message, fd.name).extend(_scalar(rng, fd) for _ in range(rng.randint(0, 5)))
            else:
                setattr(message, fd.name, _scalar(rng, fd))
        except (ValueError, TypeError):
            pass  # a value this field's type cannot hold (e.g. NaN seconds): skip it
    return message


def _huge(rng: random.Random, descriptor: Descriptor) -> bytes:
    strings = [fd for fd in descriptor.fields if fd.type == FieldDescriptor.TYPE_STRING]
    if not strings:
        return rng.randbytes(rng.randint(0, 4096))
    message = message_factory.GetMessageClass(descriptor)()
    fd = rng.choice(strings)
    size = rng.choice([2_000, 50_000, 500_000, 1_500_000])
    text = rng.choice(["B", "€", "٣"]) * size
    if fd.is_repeated:
        getattr(message, fd.name).append(text)
    else:
        setattr(message, fd.name, text)
    return message.SerializeToString()


def _repeated(rng: random.Random, descriptor: Descriptor) -> bytes:
    repeated = [fd for fd in descriptor.fields if fd.is_repeated and fd.message_type is None]
    if not repeated:
        return random_message(rng, descriptor).SerializeToString()
    message = message_factory.GetMessageClass(descriptor)()
    fd = rng.choice(repeated)
    count = rng.choice([65, 1_000, 100_000, 300_000])
    value = _scalar(rng, fd) if fd.type != FieldDescriptor.TYPE_STRING else "binance"
    getattr(message, fd.name).extend([value] * count)
    return message.SerializeToString()


def _bad_utf8(rng: random.Random, descriptor: Descriptor) -> bytes:
    strings = [fd for fd in descriptor.fields if fd.type == FieldDescriptor.TYPE_STRING]
    number = rng.choice(strings).number if strings else 1
    payload = rng.choice([b"\xff\xfe", b"BTC-\xc3", b"\xed\xa0\x80", b"\xc0\xaf"])
    return bytes([(number << 3) | 2, len(payload)]) + payload


def _nested(rng: random.Random) -> bytes:
    # Field 1, wire type 3 (start group), opened over and over and never closed.
    return b"\x0b" * rng.choice([200, 100_000])


def case_for(rng: random.Random, method: MethodDescriptor) -> Case:
    kind = rng.choice(KINDS)
    descriptor = method.input_type
    if kind == "fields":
        body = random_message(rng, descriptor).SerializeToString()
    elif kind == "huge":
        body = _huge(rng, descriptor)
    elif kind == "repeated":
        body = _repeated(rng, descriptor)
    elif kind == "raw":
        body = rng.randbytes(rng.choice([1, 3, 17, 200, 5000]))
    elif kind == "bad_utf8":
        body = _bad_utf8(rng, descriptor)
    else:
        body = _nested(rng)
    return Case(method, kind, body)


def cases(seed: int, count: int) -> Iterator[Case]:
    """``count`` cases, round-robin over every RPC, reproducible from ``seed``."""
    rng = random.Random(seed)
    methods = list(SERVICE.methods)
    for index in range(count):
        yield case_for(rng, methods[index % len(methods)])


# ---- driving a server ----------------------------------------------------------------


def call(channel: grpc.Channel, case: Case, timeout: float = 10.0) -> tuple[grpc.StatusCode, str]:
    path = f"/{SERVICE.full_name}/{case.method.name}"
    try:
        if case.method.server_streaming:
            stream = channel.unary_stream(path)(case.body, timeout=timeout)
            next(stream, None)
            stream.cancel()
        else:
            channel.unary_unary(path)(case.body, timeout=timeout)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def run(channel: grpc.Channel, all_cases: Iterator[Case], concurrency: int = 4) -> Report:
    """Send every case, ``concurrency`` at a time, and note each answer."""
    report = Report()
    lock = threading.Lock()
    source = iter(all_cases)
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            while True:
                with lock:
                    case = next(source, None)
                if case is None:
                    return
                code, details = call(channel, case)
                with lock:
                    report.note(case, code, details)
        except BaseException as error:  # surfaced below, not lost with the thread
            failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return report


def serving(channel: grpc.Channel) -> bool:
    answer = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=SERVICE.full_name), timeout=10
    )
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


_SERVING_RE = re.compile(r"serving titan\.v1\.ExchangeService on \S+ \(port (\d+),")


class ServerProcess:
    """``titan-grpc serve`` on 127.0.0.1, a free port, in its own process."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self._journal = tempfile.TemporaryDirectory(prefix="titan-fuzz-")
        env = {
            **os.environ,
            "TITAN_SIM_TICK_MS": "20",
            "TITAN_HEALTH_INTERVAL_SECONDS": "0",
            "TITAN_JOURNAL_PATH": f"{self._journal.name}/journal.sqlite3",
            "TITAN_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        command = [sys.executable, "-m", "titan_grpc", "serve", "--address", "127.0.0.1:0"]
        self.process = subprocess.Popen(
            [*command, "--env-file", ""],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.log_tail: deque[str] = deque(maxlen=200)
        self.problems: list[str] = []  # ERROR lines and tracebacks seen in the log
        self.port = self._wait_for_port()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _wait_for_port(self) -> int:
        assert self.process.stderr is not None
        for line in self.process.stderr:  # ends when the process exits
            self._keep(line)
            found = _SERVING_RE.search(line)
            if found:
                return int(found.group(1))
        raise RuntimeError("server exited before serving:\n" + "".join(self.log_tail))

    def _keep(self, line: str) -> None:
        self.log_tail.append(line)
        if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"):
            self.problems.append(line.rstrip())

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._keep(line)

    def memory_kib(self, key: str = "VmRSS") -> int:
        """``key`` (VmRSS, VmHWM) of the server process from /proc, in KiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {key} in /proc/{self.process.pid}/status")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._reader.join(timeout=10)
        self._journal.cleanup()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
