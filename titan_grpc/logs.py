"""Logging set-up: a request id on every line, text or JSON lines (TITAN_LOG_FORMAT)."""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

request_id: ContextVar[str] = ContextVar("request_id", default="-")
# The RPC being served, for per-RPC upstream metrics ("background" outside any call).
current_rpc: ContextVar[str] = ContextVar("current_rpc", default="background")
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


# Fresh ids: a random per-process prefix and a counter (cheaper than a UUID per call).
_PREFIX = uuid.uuid4().hex[:8]
_COUNTER = itertools.count(1)


def new_request_id(incoming: str = "") -> str:
    """The caller's ``x-request-id`` when it is sane, else a fresh one."""
    if incoming and _INCOMING_ID.match(incoming):
        return incoming
    return f"{_PREFIX}{next(_COUNTER):08x}"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
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


def configure_logging(level: str, fmt: str = "text") -> None:
    # No caller frame, thread or process lookups per record: the access log writes one
    # record per RPC and our format uses none of them (logging HOWTO, "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level, logging.INFO))
