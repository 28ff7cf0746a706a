"""Logging set-up: a request id on every line, text or JSON lines (TITAN_LOG_FORMAT)."""

from __future__ import annotations

import asyncio
import atexit
import itertools
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# The call being served: its request id (on every log line) and RPC name (for per-RPC
# upstream metrics); one variable, as setting one costs each call less than two.
current_call: ContextVar[tuple[str, str]] = ContextVar("current_call", default=("-", "background"))
# The caller's x-request-id ("" when none) as the gRPC server read it while resolving the
# method; None when the call did not come that way (HTTP, a direct call). Tasks started
# during a gRPC call inherit it with the rest of the context; none of them serves a call.
caller_request_id: ContextVar[str | None] = ContextVar("caller_request_id", default=None)
REQUEST_ID_KEY = "x-request-id"
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id() -> str:
    """The request id of the call being served ("-" outside any call)."""
    return current_call.get()[0]


def request_id_in(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    """The ``x-request-id`` a caller sent in ``metadata`` ("" when none)."""
    incoming = ""
    for key, value in metadata:
        if key == REQUEST_ID_KEY and isinstance(value, str):
            incoming = value
    return incoming


# Fresh ids: a random per-process prefix and a counter, "3fa2b1c0-42": unique per
# process run, and cheaper than a UUID (or a formatted counter) per call.
_PREFIX = f"{uuid.uuid4().hex[:8]}-"
_COUNTER = itertools.count(1)


def new_request_id(incoming: str = "") -> str:
    """The caller's ``x-request-id`` when it is sane, else a fresh one."""
    if incoming and _INCOMING_ID.match(incoming):
        return incoming
    return _PREFIX + str(next(_COUNTER))


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_call.get()[0]
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    """The text format, with the time of day formatted once per second rather than per
    record (the access log writes one record per RPC)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(record.created))
        return f"{self._stamp},{int(record.msecs):03d}"


class AccessLog:
    """The request log's lines (one per RPC), written in batches.

    Each line is exactly what the configured handler would print for the record
    ``titan_grpc.rpc`` INFO ``rpc=… code=… duration_ms=…``. A finished call is only
    recorded (one append); its line is built, without a LogRecord, when the buffer goes
    out in one write: when it holds ``batch`` calls, ``delay_seconds`` after its first,
    before any other log record (the handler's filter flushes it first, so lines keep
    their order) and at exit. Per call this is the hot path's largest cost otherwise
    (bench/NOTES.md).
    """

    def __init__(self, handler: logging.StreamHandler[Any], fmt: str, *, batch: int = 256) -> None:
        self._handler = handler
        self._json = fmt == "json"
        self._batch = batch
        # (perf_counter at the end, request id, rpc, status code name, seconds, extra text).
        # A deque: another thread's record flushes the buffer (_FlushAccessLogFirst) while
        # the loop appends; popping item by item loses none, the lock keeps lines in order.
        self._calls: deque[tuple[float, str, str, str, float, str]] = deque()
        self._flushing = threading.Lock()
        self._scheduled = False
        self._second = -1
        self._stamp = ""

    def record(
        self, ended: float, rid: str, rpc: str, code: str, seconds: float, extra: str = ""
    ) -> None:
        """One finished call; ``ended`` is its ``time.perf_counter()`` at the end."""
        calls = self._calls
        calls.append((ended, rid, rpc, code, seconds, extra))
        if len(calls) >= self._batch:
            self.flush()
        elif not self._scheduled:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_later(ACCESS_LOG_DELAY_SECONDS, self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._calls:
            return
        with self._flushing:
            pending, calls = self._calls, []
            while pending:
                calls.append(pending.popleft())
            if not calls:
                return
            text = self._json_lines(calls) if self._json else self._text_lines(calls)
            handler = self._handler
            handler.acquire()
            try:
                handler.stream.write(text)
                handler.flush()
            finally:
                handler.release()

    def _text_lines(self, calls: list[tuple[float, str, str, str, float, str]]) -> str:
        # Wall-clock times from the calls' perf_counter ends: one clock read per batch.
        wall_offset = time.time() - time.perf_counter()
        lines = []
        for ended, rid, rpc, code, seconds, extra in calls:
            at = ended + wall_offset
            second = int(at)
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
            lines.append(
                f"{self._stamp},{int((at - second) * 1000):03d} INFO {ACCESS_LOGGER} [{rid}] "
                f"rpc={rpc} code={code} duration_ms={seconds * 1000:.1f}{extra}\n"
            )
        return "".join(lines)

    def _json_lines(self, calls: list[tuple[float, str, str, str, float, str]]) -> str:
        wall_offset = time.time() - time.perf_counter()
        lines = []
        for ended, rid, rpc, code, seconds, extra in calls:
            entry = {
                "time": datetime.fromtimestamp(ended + wall_offset, UTC).isoformat(
                    timespec="milliseconds"
                ),
                "level": "INFO",
                "logger": ACCESS_LOGGER,
                "request_id": rid,
                "message": f"rpc={rpc} code={code} duration_ms={seconds * 1000:.1f}{extra}",
            }
            lines.append(json.dumps(entry) + "\n")
        return "".join(lines)


ACCESS_LOGGER = "titan_grpc.rpc"
ACCESS_LOG_DELAY_SECONDS = 0.05
# Set by configure_logging when the request log is on; None (the standard logging path)
# in embedded use and tests, and when the level is above INFO.
access_log: AccessLog | None = None


class _FlushAccessLogFirst(logging.Filter):
    """Any other record goes out after the request lines buffered before it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if access_log is not None:
            access_log.flush()
        return True


def configure_logging(level: str, fmt: str = "text") -> None:
    # No caller frame, thread or process lookups per record: the access log writes one
    # record per RPC and our format uses none of them (logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler: logging.StreamHandler[Any] = logging.StreamHandler()
    handler.addFilter(_FlushAccessLogFirst())
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level, logging.INFO))
    global access_log
    if access_log is not None:
        access_log.flush()
    # The request log is on at INFO (the default); above it no call records anything.
    access_log = None
    if logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO):
        access_log = AccessLog(handler, fmt)
        atexit.register(access_log.flush)
