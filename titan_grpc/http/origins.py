"""Which browsers may call the HTTP/JSON routes: CORS, and the guards a trading API on
localhost needs against web pages.

- A request carrying ``Origin`` (a browser calling from a page) is refused with 403 unless
  that origin is listed (``TITAN_HTTP_CORS_ORIGINS``). Browsers send ``Origin`` on every
  cross-origin POST, PUT, PATCH and DELETE, even the "simple" ones that skip the CORS
  preflight, so a page the trader happens to visit cannot place or cancel orders through
  an unauthenticated gateway on 127.0.0.1. curl and programs send no ``Origin``.
- A listed origin gets CORS: preflights are answered, responses (Server-Sent Events
  included) carry ``Access-Control-Allow-Origin`` and expose ``x-request-id``.
- On a loopback address the ``Host`` header must name a loopback host (or one of
  ``TITAN_HTTP_ALLOWED_HOSTS``): a page whose domain is re-pointed at 127.0.0.1 (DNS
  rebinding) is same-origin in the browser's eyes, but its requests name its own host.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.rpc import status_pb2

from titan_grpc.errors import excerpt
from titan_grpc.http.context import request_id_header

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = "authorization, content-type, grpc-timeout, x-request-id"
PREFLIGHT_MAX_AGE_SECONDS = 600

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class OriginPolicy:
    cors_origins: frozenset[str] = frozenset()  # "scheme://host[:port]", lower case
    allowed_hosts: frozenset[str] | None = None  # host names without port; None: any

    @classmethod
    def for_address(
        cls, loopback: bool, cors_origins: Iterable[str], extra_hosts: Iterable[str] = ()
    ) -> OriginPolicy:
        """Hosts are checked on a loopback address only (beyond it tokens are required,
        and a page has none)."""
        hosts = LOOPBACK_HOSTS | {host.lower() for host in extra_hosts} if loopback else None
        return cls(frozenset(origin.lower() for origin in cors_origins), hosts)

    def allows_origin(self, origin: str) -> bool:
        return origin.lower() in self.cors_origins

    def install(self, app: web.Application) -> None:
        app.middlewares.append(self._guard)
        app.on_response_prepare.append(self._add_cors_headers)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.allowed_hosts is not None and _host_name(request.host) not in self.allowed_hosts:
            return _refusal(
                request,
                f"host: {excerpt(request.host)} is not a name of this server; list it in "
                "TITAN_HTTP_ALLOWED_HOSTS if it is (a guard against DNS rebinding)",
            )
        origin = request.headers.get("Origin")
        if origin is None:
            return await handler(request)
        if not self.allows_origin(origin):
            return _refusal(
                request,
                f"origin: pages from {excerpt(origin)} may not call this server; list the "
                "origin in TITAN_HTTP_CORS_ORIGINS to allow it",
            )
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return web.Response(
                status=204,
                headers={
                    "Access-Control-Allow-Methods": ALLOWED_METHODS,
                    "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                    "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
                },
            )
        return await handler(request)

    async def _add_cors_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and self.allows_origin(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = "x-request-id"
            response.headers.add("Vary", "Origin")


def _host_name(host: str | None) -> str:
    """The name in a Host header, without port or IPv6 brackets, lower case."""
    if not host:
        return ""
    if host.startswith("["):
        return host[1:].partition("]")[0].lower()
    return host.rpartition(":")[0].lower() if host.count(":") == 1 else host.lower()


def _refusal(request: web.Request, message: str) -> web.Response:
    status = status_pb2.Status(code=grpc.StatusCode.PERMISSION_DENIED.value[0], message=message)
    return web.json_response(
        json_format.MessageToDict(status), status=403, headers=request_id_header(request.headers)
    )
