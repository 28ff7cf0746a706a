"""The batched request log writes what the logging handler would, in order."""

from __future__ import annotations

import io
import json
import logging
import time
from datetime import datetime
from typing import Any

from titan_grpc.logs import AccessLog, JsonFormatter, RequestIdFilter, TextFormatter, current_call


def handler_for(fmt: str) -> tuple[logging.StreamHandler[Any], io.StringIO]:
    sink = io.StringIO()
    handler: logging.StreamHandler[Any] = logging.StreamHandler(sink)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler, sink


def standard_line(handler: logging.StreamHandler[Any], message: str) -> str:
    record = logging.LogRecord("titan_grpc.rpc", logging.INFO, "", 0, message, (), None)
    handler.filter(record)
    return handler.format(record)


async def test_text_lines_match_the_handlers_own_format_and_come_out_in_one_batch() -> None:
    handler, sink = handler_for("text")
    access = AccessLog(handler, "text", batch=3)
    token = current_call.set(("req-1", "GetStatus"))
    try:
        for n in range(3):
            access.record(time.perf_counter(), "req-1", "GetStatus", "OK", n / 10_000)
        expected = standard_line(handler, "rpc=GetStatus code=OK duration_ms=0.2")
    finally:
        current_call.reset(token)
    lines = sink.getvalue().splitlines()
    assert len(lines) == 3  # the third call filled the batch
    # Same text but for the milliseconds of the time stamp.
    assert lines[2].split(" ", 2)[2] == expected.split(" ", 2)[2]
    assert lines[2][:19] == expected[:19]


async def test_json_lines_match_and_nothing_is_lost_on_flush() -> None:
    handler, sink = handler_for("json")
    access = AccessLog(handler, "json", batch=100)
    ended = time.perf_counter()
    access.record(ended, "req-7", "PlaceOrder", "ABORTED", 0.00104, " messages=3")
    assert sink.getvalue() == ""  # buffered (written within 50 ms, or at the next record)
    access.flush()
    (line,) = sink.getvalue().splitlines()
    entry = json.loads(line)
    assert (entry["logger"], entry["level"], entry["request_id"], entry["message"]) == (
        "titan_grpc.rpc",
        "INFO",
        "req-7",
        "rpc=PlaceOrder code=ABORTED duration_ms=1.0 messages=3",
    )
    assert set(entry) == set(json.loads(standard_line(handler, "x")))
    # The line's time is when the call ended, not when the batch went out.
    logged = datetime.fromisoformat(entry["time"]).timestamp()
    assert abs(logged - (time.time() - (time.perf_counter() - ended))) < 0.01
