"""gRPC transport settings for the server, from ``Settings.tuning``: keepalive and ping
policy, compression, channelz and OpenTelemetry tracing. ``server.py`` applies them.

Defaults: the server pings a connection that has calls open after 60 s of quiet and drops
it when the ping is not answered within 20 s, so a vanished stream subscriber is noticed in
under 90 s rather than gRPC's default 2 h. Clients may ping every 10 s, also between calls
(gRPC's default policy answers pings more often than every 5 min with GOAWAY
``too_many_pings``). Answers are not compressed (market data is small and latency-bound;
a client may still send compressed requests). Channelz and tracing are off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from titan_grpc.config import Settings
from titan_grpc.errors import ConfigError

if TYPE_CHECKING:
    from titan_grpc.service.handlers import GenericHandlersOnly

CHANNELZ_SERVICE = "grpc.channelz.v1.Channelz"
_COMPRESSION = {
    "none": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def channel_args(settings: Settings) -> list[tuple[str, int]]:
    """Keepalive, ping policy and connection lifetime as gRPC core channel arguments."""
    tuning = settings.tuning
    args = [
        ("grpc.keepalive_time_ms", _ms(tuning.keepalive_time_seconds)),
        ("grpc.keepalive_timeout_ms", _ms(tuning.keepalive_timeout_seconds)),
        ("grpc.keepalive_permit_without_calls", 1),
        # the least time between client pings the server accepts while no data flows
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(tuning.min_client_ping_seconds)),
        ("grpc.http2.max_ping_strikes", 2),
        # keep pinging a quiet stream (gRPC's default stops after 2 pings without data)
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_channelz", int(tuning.channelz)),
    ]
    if tuning.max_connection_idle_seconds:
        args.append(("grpc.max_connection_idle_ms", _ms(tuning.max_connection_idle_seconds)))
    if tuning.max_connection_age_seconds:
        args.append(("grpc.max_connection_age_ms", _ms(tuning.max_connection_age_seconds)))
    return args


def compression(settings: Settings) -> grpc.Compression:
    return _COMPRESSION[settings.tuning.compression]


def tracing_interceptors(settings: Settings) -> list[grpc.aio.ServerInterceptor]:
    """The OpenTelemetry grpc aio server interceptor when ``TITAN_OTEL`` is on.

    Spans go to the process's global tracer provider: configure it (exporter, sampler)
    the OpenTelemetry way, e.g. ``opentelemetry.sdk`` in an embedding program or the
    ``OTEL_*`` variables under ``opentelemetry-instrument``.
    """
    if not settings.tuning.otel:
        return []
    try:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor
    except ImportError:
        raise ConfigError(
            ["TITAN_OTEL: OpenTelemetry is not installed: pip install 'titan-grpc[otel]'"]
        ) from None
    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor()  # type: ignore[no-untyped-call]
    return [interceptor]


def add_channelz(settings: Settings, server: GenericHandlersOnly) -> tuple[str, ...]:
    """Serve grpc.channelz.v1 when ``TITAN_CHANNELZ`` is on; the names to reflect."""
    if not settings.tuning.channelz:
        return ()
    from grpc_channelz.v1 import channelz, channelz_pb2_grpc

    channelz_pb2_grpc.add_ChannelzServicer_to_server(channelz.aio.ChannelzServicer(), server)
    return (CHANNELZ_SERVICE,)
