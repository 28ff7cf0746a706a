"""Operator settings on a real server: keepalive/ping policy, compression, channelz, tracing."""

from __future__ import annotations

from dataclasses import replace

import grpc
import pytest
from grpc_channelz.v1 import channelz_pb2, channelz_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import make_settings
from titan_grpc.config import ServerTuning, load_settings
from titan_grpc.errors import ConfigError
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import start_gateway
from titan_grpc.server_options import channel_args


def test_keepalive_and_ping_policy_defaults_and_overrides() -> None:
    defaults = dict(channel_args(load_settings({}, env_file=None)))
    assert defaults["grpc.keepalive_time_ms"] == 60_000
    assert defaults["grpc.keepalive_timeout_ms"] == 20_000
    assert defaults["grpc.keepalive_permit_without_calls"] == 1
    assert defaults["grpc.http2.min_ping_interval_without_data_ms"] == 10_000
    assert defaults["grpc.http2.max_pings_without_data"] == 0
    assert defaults["grpc.enable_channelz"] == 0
    assert "grpc.max_connection_age_ms" not in defaults
    tuned = load_settings(
        {
            "TITAN_KEEPALIVE_TIME_SECONDS": "30",
            "TITAN_MIN_CLIENT_PING_SECONDS": "5",
            "TITAN_MAX_CONNECTION_AGE_SECONDS": "3600",
            "TITAN_COMPRESSION": "GZIP",
        },
        env_file=None,
    )
    args = dict(channel_args(tuned))
    assert args["grpc.keepalive_time_ms"] == 30_000
    assert args["grpc.http2.min_ping_interval_without_data_ms"] == 5_000
    assert args["grpc.max_connection_age_ms"] == 3_600_000
    assert tuned.tuning.compression == "gzip"


def test_bad_tuning_values_name_their_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {"TITAN_COMPRESSION": "zstd", "TITAN_KEEPALIVE_TIME_SECONDS": "-1"}, env_file=None
        )
    problems = " ".join(caught.value.problems)
    assert "TITAN_COMPRESSION" in problems and "TITAN_KEEPALIVE_TIME_SECONDS" in problems


async def test_gzip_answers_and_channelz_behind_its_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every service is served by a generic handler and none is registered with grpc:
    # grpc.aio's accept loop waits on one pending request per registered method for
    # every call it accepts (service/handlers.py, GenericHandlersOnly).
    registered: list[str] = []
    monkeypatch.setattr(
        grpc.aio._server.Server,
        "add_registered_method_handlers",
        lambda _server, service, _handlers: registered.append(service),
    )
    tuning = ServerTuning(compression="gzip", channelz=True)
    gateway = await start_gateway(make_settings(tuning=tuning))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            answer = await stub.GetMarketData(
                pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="binance")
            )
            assert answer.ticker.source.simulated
            servers = await channelz_pb2_grpc.ChannelzStub(channel).GetServers(
                channelz_pb2.GetServersRequest()
            )
            assert servers.server and servers.server[0].data.calls_started >= 1
            assert await _reflected_services(channel) == {
                "titan.v1.ExchangeService",
                "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection",
                "grpc.channelz.v1.Channelz",
            }
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="titan.v1.ExchangeService")
            )
            assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await gateway.stop(grace=1.0)
    assert registered == []


async def test_channelz_is_off_by_default(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await channelz_pb2_grpc.ChannelzStub(channel).GetServers(channelz_pb2.GetServersRequest())
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "grpc.channelz.v1.Channelz" not in await _reflected_services(channel)


async def _reflected_services(channel: grpc.aio.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for answer in stub.ServerReflectionInfo(iter([request])):
        return {s.name for s in answer.list_services_response.service}
    return set()


async def test_otel_traces_every_rpc_when_enabled() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    for otel in (False, True):
        settings = make_settings()
        gateway = await start_gateway(replace(settings, tuning=ServerTuning(otel=otel)))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
                await pb_grpc.ExchangeServiceStub(channel).GetStatus(pb.GetStatusRequest())
        finally:
            await gateway.stop(grace=1.0)
        names = [span.name for span in exporter.get_finished_spans()]
        assert names == (["/titan.v1.ExchangeService/GetStatus"] if otel else [])


def test_otel_enabled_without_the_extra_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from titan_grpc.server_options import tracing_interceptors

    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.grpc", None)
    with pytest.raises(ConfigError) as caught:
        tracing_interceptors(make_settings(tuning=ServerTuning(otel=True)))
    assert caught.value.problems == [
        "TITAN_OTEL: OpenTelemetry is not installed: pip install 'titan-grpc[otel]'"
    ]
