"""Server assembly: health, reflection, request log, start-up rules, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import make_settings
from titan_grpc.errors import ConfigError
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway, start_gateway


async def test_health_reports_serving_for_server_and_service(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "titan.v1.ExchangeService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_graceful_shutdown_flips_health_before_stopping(
    gateway: Gateway, channel: grpc.aio.Channel
) -> None:
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service="titan.v1.ExchangeService")
    )
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    stopping = asyncio.create_task(gateway.stop(grace=2.0))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    await stopping


async def test_reflection_lists_and_describes_everything(channel: grpc.aio.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask(
        request: reflection_pb2.ServerReflectionRequest,
    ) -> reflection_pb2.ServerReflectionResponse:
        call = reflection.ServerReflectionInfo(iter([request]))
        answer = await call.read()
        call.cancel()
        return answer

    listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {service.name for service in listed.list_services_response.service}
    assert {"titan.v1.ExchangeService", "grpc.health.v1.Health"} <= names
    described = await ask(
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="titan.v1.ExchangeService")
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    (exchange_file,) = [f for f in files if f.package == "titan.v1"]
    methods = {m.name: m for m in exchange_file.service[0].method}
    declared = {m.name for m in pb.DESCRIPTOR.services_by_name["ExchangeService"].methods}
    assert set(methods) == declared
    assert methods["StreamQuotes"].server_streaming
    assert methods["StreamOrderBook"].server_streaming


async def test_every_rpc_is_logged_with_method_status_and_duration(
    stub: pb_grpc.ExchangeServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="titan_grpc.rpc"):
        await stub.GetStatus(pb.GetStatusRequest())
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetMarketData(pb.GetMarketDataRequest(symbol="?", exchange="binance"))
    lines = [r.getMessage() for r in caplog.records if r.name == "titan_grpc.rpc"]
    assert any(line.startswith("rpc=GetStatus code=OK duration_ms=") for line in lines)
    assert any(line.startswith("rpc=GetMarketData code=INVALID_ARGUMENT") for line in lines)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"grpc_address": "0.0.0.0:0"}, "TITAN_GRPC_ADDRESS"),
    ],
)
async def test_unsafe_or_unsupported_configurations_refuse_to_start(
    overrides: dict[str, object], variable: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        await start_gateway(make_settings(**overrides))
    assert any(problem.startswith(variable) for problem in caught.value.problems)


async def test_a_second_server_cannot_silently_share_the_port(gateway: Gateway) -> None:
    with pytest.raises(ConfigError) as caught:
        await start_gateway(make_settings(grpc_address=f"127.0.0.1:{gateway.port}"))
    assert "cannot bind" in caught.value.problems[0]
