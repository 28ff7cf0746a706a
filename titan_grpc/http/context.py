"""What the servicer sees of a call when it arrives over HTTP: a small stand-in for
``grpc.aio.ServicerContext`` with the parts the servicer uses (service/base.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import NoReturn

import grpc
from google.rpc import status_pb2

from titan_grpc.logs import REQUEST_ID_KEY, new_request_id

STATUS_DETAILS_KEY = "grpc-status-details-bin"

Metadata = tuple[tuple[str, str | bytes], ...]


def request_id_header(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``x-request-id`` of an answer given before any call is served (a refused host
    or origin, no such route, a body too large, a missing token): the caller's id when
    sane, else a fresh one, as every call's answer carries."""
    return {REQUEST_ID_KEY: new_request_id(headers.get(REQUEST_ID_KEY, ""))}


class HttpAbort(grpc.aio.AbortError):
    """Raised by ``HttpServicerContext.abort``; an AbortError so the servicer's decorators
    let it through exactly as they do grpc.aio's own."""

    def __init__(self, status: status_pb2.Status, trailing_metadata: Metadata) -> None:
        super().__init__(status.message)
        self.status = status
        self.trailing_metadata = trailing_metadata


def status_of(
    code: grpc.StatusCode, details: str, trailing_metadata: Sequence[tuple[str, str | bytes]]
) -> status_pb2.Status:
    """The google.rpc.Status a gRPC client would read: the rich one from the trailers, if any."""
    for key, value in trailing_metadata:
        if key == STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return status_pb2.Status(code=code.value[0], message=details)


class HttpServicerContext:
    def __init__(self, metadata: Metadata, peer: str, timeout: float | None = None) -> None:
        self._metadata = metadata
        self._peer = peer
        loop = asyncio.get_running_loop()
        self._deadline = None if timeout is None else loop.time() + timeout
        self._trailing: Metadata = ()
        self._cancelled = False
        self._code = grpc.StatusCode.OK
        self._details = ""

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self._trailing = tuple(metadata)

    def trailing_metadata(self) -> Metadata:
        return self._trailing

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(self._deadline - asyncio.get_running_loop().time(), 0.0)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def set_details(self, details: str) -> None:
        self._details = details

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._cancelled

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> NoReturn:
        trailing = (*self._trailing, *trailing_metadata)
        raise HttpAbort(status_of(code, details, trailing), tuple(trailing))
