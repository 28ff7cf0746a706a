"""A server stream as Server-Sent Events: one ``data:`` line of JSON per message.

The status line waits for the first message (as grpc-gateway does), so a request the
servicer refuses still gets its HTTP error status; a stream that stays quiet longer than
``first_event_window`` gets its 200 and headers anyway. After that, errors (the deadline
included) arrive as an ``event: error`` carrying the google.rpc.Status, and a comment line
goes out when the stream has been silent for ``keepalive`` seconds, so proxies keep the
connection and a departed client is noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.rpc import status_pb2

from titan_grpc.http.context import HttpAbort

_END = object()  # the stream finished
_QUIET = object()  # nothing yet; the wait timed out


class MessagePump:
    """Pulls the servicer's stream in its own task, so waiting for the next message can
    time out (early headers, keep-alives) without cancelling the stream itself."""

    def __init__(self, messages: AsyncIterator[Any]) -> None:
        self._queue: asyncio.Queue[tuple[Any, Exception | None]] = asyncio.Queue(maxsize=1)
        # One context for the whole stream: what the servicer sets (the request id) stays.
        self._task = asyncio.create_task(self._run(messages), context=contextvars.copy_context())

    async def _run(self, messages: AsyncIterator[Any]) -> None:
        try:
            async for message in messages:
                await self._queue.put((message, None))
        except Exception as error:  # the servicer's abort, NotImplementedError
            await self._queue.put((None, error))
            return
        await self._queue.put((_END, None))

    async def next(self, wait: float | None) -> Any:
        """The next message, ``_END`` when the stream is over, ``_QUIET`` after ``wait``
        seconds without one; raises the stream's error."""
        try:
            message, error = await asyncio.wait_for(self._queue.get(), wait)
        except TimeoutError:
            return _QUIET
        if error is not None:
            raise error
        return message

    async def close(self) -> None:
        """End the servicer's stream (it sees a cancellation, as when a gRPC client leaves)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def serve_events(
    request: web.Request,
    pump: MessagePump,
    to_json: Callable[[Any], Any],
    headers: Callable[[], Mapping[str, str]],
    *,
    deadline: float | None,
    first_event_window: float,
    keepalive: float,
) -> web.StreamResponse:
    """Raises the stream's error (HttpAbort, TimeoutError for the deadline) while nothing
    has been sent; afterwards reports it in the stream."""
    async with asyncio.timeout_at(deadline):
        message = await pump.next(first_event_window)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers()}
    )
    await response.prepare(request)
    try:
        async with asyncio.timeout_at(deadline):
            while message is not _END:
                if message is _QUIET:
                    await response.write(b": keep-alive\n\n")
                else:
                    await response.write(event(to_json(message)))
                message = await pump.next(keepalive)
    except HttpAbort as abort:
        await response.write(event(json_format.MessageToDict(abort.status), "error"))
    except TimeoutError:
        status = status_pb2.Status(
            code=grpc.StatusCode.DEADLINE_EXCEEDED.value[0], message="deadline exceeded"
        )
        await response.write(event(json_format.MessageToDict(status), "error"))
    except ConnectionResetError:  # the client left between two messages
        return response
    await response.write_eof()
    return response


def event(document: Any, kind: str = "") -> bytes:
    head = f"event: {kind}\n" if kind else ""
    return f"{head}data: {json.dumps(document, separators=(',', ':'))}\n\n".encode()
