"""Start and stop the HTTP/JSON listener next to the gRPC server."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from aiohttp import web
from google.protobuf.descriptor import ServiceDescriptor

from titan_grpc.http.origins import OriginPolicy
from titan_grpc.http.transcoder import Authorizer, build_app


@dataclass
class HttpServer:
    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        """Stop accepting, let running requests finish (up to the shutdown timeout)."""
        await self.runner.cleanup()


async def start_http_server(
    address: str,
    service: ServiceDescriptor,
    servicer: object,
    authorizer: Authorizer | None = None,
    *,
    origins: OriginPolicy | None = None,
    ssl_context: ssl.SSLContext | None = None,
    shutdown_timeout: float = 5.0,
) -> HttpServer:
    """Serve ``service`` over HTTP/JSON on HOST:PORT (port 0 picks one).

    OSError when the address cannot be bound."""
    host, _, port = address.rpartition(":")
    # handler_cancellation: a client that leaves cancels its handler, so a quiet
    # Server-Sent Events stream ends (and unsubscribes) at once, as a gRPC stream does.
    runner = web.AppRunner(
        build_app(service, servicer, authorizer, origins=origins),
        handler_cancellation=True,
        access_log=None,  # the servicer logs one line per call
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=ssl_context)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return HttpServer(runner, int(bound))


def server_ssl_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """The gRPC server's TLS set-up for HTTP too: same certificate, mTLS when a client CA is set."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
