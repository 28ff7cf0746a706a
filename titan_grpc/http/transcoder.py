"""HTTP/JSON in front of a gRPC servicer, in the same process: aiohttp, one catch-all
handler, the routes of the ``google.api.http`` annotations and nothing per route.

A call is authorised by the same check as the gRPC interceptor, bound to its request
message (binding.py), handed to the servicer method with an HttpServicerContext, and
answered as proto3 JSON; a server stream as Server-Sent Events (sse.py). Errors are the
JSON of the google.rpc.Status a gRPC client would get, under the HTTP status of the
standard code mapping (google/rpc/code.proto).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.descriptor import ServiceDescriptor
from google.rpc import status_pb2

from titan_grpc.convert import check_request_bounds
from titan_grpc.errors import Inadmissible, InvalidArgument, excerpt
from titan_grpc.http.binding import BadInput, message_to_json, request_from_http
from titan_grpc.http.context import HttpAbort, HttpServicerContext, Metadata, request_id_header
from titan_grpc.http.openapi import openapi_document
from titan_grpc.http.origins import OriginPolicy
from titan_grpc.http.routes import Route, routes_of
from titan_grpc.http.sse import MessagePump, serve_events
from titan_grpc.logs import REQUEST_ID_KEY, current_call

log = logging.getLogger("titan_grpc.rpc")

MAX_BODY_BYTES = 1 << 20
# A stream's status line waits this long for its first message (sse.py), then goes out.
FIRST_EVENT_WINDOW_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
OPENAPI_PATH = "/openapi.json"

# google/rpc/code.proto: the HTTP status each canonical code maps to.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

# Headers passed to the servicer as call metadata (the rest stay in the HTTP layer).
_FORWARDED_HEADERS = ("x-request-id", "user-agent")
# grpc-timeout, as grpc-gateway reads it: digits and a unit (H, M, S, m, u, n).
_TIMEOUT = re.compile(r"(\d{1,8})([HMSmun])")
_UNIT_SECONDS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class Authorizer(Protocol):
    def check(
        self, method: str, metadata: Sequence[tuple[str, str | bytes]]
    ) -> tuple[grpc.StatusCode, str] | None: ...


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_STATUS.get(code, 500)


def build_app(
    service: ServiceDescriptor,
    servicer: object,
    authorizer: Authorizer | None = None,
    *,
    origins: OriginPolicy | None = None,
    first_event_window: float = FIRST_EVENT_WINDOW_SECONDS,
    keepalive: float = KEEPALIVE_SECONDS,
) -> web.Application:
    """The aiohttp application serving ``service`` from ``servicer`` plus /openapi.json;
    ``origins`` says which browsers may call it (default: none, any host name)."""
    routes = routes_of(list(service.methods))
    transcoder = _Transcoder(routes, servicer, authorizer, first_event_window, keepalive)
    document = openapi_document(service, routes)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    (origins or OriginPolicy()).install(app)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(OPENAPI_PATH, openapi)
    app.router.add_route("*", "/{tail:.*}", transcoder.handle)
    return app


class _Transcoder:
    def __init__(
        self,
        routes: Sequence[Route],
        servicer: object,
        authorizer: Authorizer | None,
        first_event_window: float,
        keepalive: float,
    ) -> None:
        self._routes = routes
        self._servicer = servicer
        self._authorizer = authorizer
        self._first_event_window = first_event_window
        self._keepalive = keepalive

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.rel_url.raw_path
        allowed: list[str] = []
        for route in self._routes:
            values = route.template.match(raw_path)
            if values is None:
                continue
            if route.http_method != request.method:
                allowed.append(route.http_method)
                continue
            return await self._call(route, values, request)
        if allowed:
            status = status_pb2.Status(
                code=grpc.StatusCode.UNIMPLEMENTED.value[0],
                message=f"{request.method} is not served on {request.path}; "
                f"use {' or '.join(sorted(set(allowed)))}",
            )
            headers = {"Allow": ", ".join(sorted(set(allowed)))}
            return _error_response(status, http=405, headers=_before_any_call(request, headers))
        status = status_pb2.Status(
            code=grpc.StatusCode.NOT_FOUND.value[0],
            message=f"no route for {request.path}; see {OPENAPI_PATH}",
        )
        return _error_response(status, headers=_before_any_call(request))

    async def _call(
        self, route: Route, values: dict[str, str], request: web.Request
    ) -> web.StreamResponse:
        if self._authorizer is not None:
            offered = (("authorization", request.headers.get("Authorization", "")),)
            refusal = self._authorizer.check(route.full_method, offered)
            if refusal is not None:
                code, message = refusal
                headers = _before_any_call(request)
                current_call.set((headers[REQUEST_ID_KEY], route.method.name))
                log.info("rpc=%s code=%s (access control, http)", route.method.name, code.name)
                status = status_pb2.Status(code=code.value[0], message=message)
                return _error_response(status, headers=headers)
        timeout: float | None = None
        try:
            timeout = _timeout(request.headers.get("grpc-timeout", ""))
            body = await request.read() if route.body else b""
            call_request: Any = request_from_http(route, values, request.query.items(), body)
            # The edge bounds, checked where the body is parsed (for gRPC: service/handlers.py).
            check_request_bounds(call_request)
        except BadInput as bad:
            # The servicer answers the refusal, so it gets a request id, log line and metrics.
            call_request = Inadmissible(InvalidArgument(bad.field, bad.reason))
        except InvalidArgument as refused:
            call_request = Inadmissible(refused)
        except web.HTTPRequestEntityTooLarge:
            status = status_pb2.Status(
                code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                message=f"body: larger than {MAX_BODY_BYTES} bytes",
            )
            return _error_response(status, http=413, headers=_before_any_call(request))
        context = HttpServicerContext(_metadata(request), request.remote or "", timeout)
        method = getattr(self._servicer, route.method.name)
        try:
            if route.server_streaming:
                return await self._stream(route, method(call_request, context), context, request)
            async with asyncio.timeout(timeout):
                response = await method(call_request, context)
        except HttpAbort as abort:
            return _error_response(abort.status, headers=_headers(abort.trailing_metadata))
        except TimeoutError:
            return _error_response(_status(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"))
        except NotImplementedError:
            return _error_response(_status(grpc.StatusCode.UNIMPLEMENTED, "not implemented"))
        except asyncio.CancelledError:
            context.cancel()  # the client left (aiohttp cancels the handler)
            raise
        return web.json_response(
            message_to_json(response, route.response_body),
            headers=_headers(context.trailing_metadata()),
        )

    async def _stream(
        self,
        route: Route,
        messages: AsyncIterator[Any],
        context: HttpServicerContext,
        request: web.Request,
    ) -> web.StreamResponse:
        remaining = context.time_remaining()
        deadline = None if remaining is None else asyncio.get_running_loop().time() + remaining
        pump = MessagePump(messages)
        try:
            return await serve_events(
                request,
                pump,
                lambda message: message_to_json(message, route.response_body),
                lambda: _headers(context.trailing_metadata()),
                deadline=deadline,
                first_event_window=self._first_event_window,
                keepalive=self._keepalive,
            )
        finally:
            await pump.close()


def _status(code: grpc.StatusCode, message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code.value[0], message=message)


def _error_response(
    status: status_pb2.Status, *, http: int = 0, headers: dict[str, str] | None = None
) -> web.Response:
    code = _BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    return web.json_response(
        json_format.MessageToDict(status),
        status=http or http_status(code),
        headers=headers,
    )


def _before_any_call(request: web.Request, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers or {}), **request_id_header(request.headers)}


def _metadata(request: web.Request) -> Metadata:
    return tuple(
        (name, request.headers[name]) for name in _FORWARDED_HEADERS if name in request.headers
    )


def _headers(metadata: Metadata) -> dict[str, str]:
    """Text trailing metadata (the request id) as response headers."""
    return {
        key: value for key, value in metadata if isinstance(value, str) and not key.endswith("-bin")
    }


def _timeout(header: str) -> float | None:
    if not header:
        return None
    match = _TIMEOUT.fullmatch(header.strip())
    if match is None:
        raise BadInput(
            "grpc-timeout", f"expected digits and a unit (e.g. 10S), got {excerpt(header)}"
        )
    return int(match[1]) * _UNIT_SECONDS[match[2]]
