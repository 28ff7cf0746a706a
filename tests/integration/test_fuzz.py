"""Hypothesis-driven requests with random field values for every RPC.

No answer may be UNKNOWN or INTERNAL, nothing may crash, and the server keeps serving.
The server runs in its own thread and event loop so hypothesis can drive it with a
plain synchronous client.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_settings
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.server import Gateway, start_gateway

SERVICE = pb.DESCRIPTOR.services_by_name["ExchangeService"]
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
INTERESTING = [
    "",
    " ",
    "BTC-USDT",
    "btcusdt",
    "ETH/BTC",
    "DOGE-USDT",
    "binance",
    "coinbase",
    "kucoin",
    "mock",
    "MOCK",
    "0",
    "0.001",
    "30000",
    "-1",
    "NaN",
    "-Infinity",
    "1e400",
    "1e-400",
    "9" * 60,
    "0." + "0" * 40 + "1",
    "SIM-BIN-00000001",
    "\x00",
    "€",
    "a" * 300,
]


def field_strategy(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_STRING:
        base: st.SearchStrategy[Any] = st.one_of(st.sampled_from(INTERESTING), st.text(max_size=50))
    elif field.type == FieldDescriptor.TYPE_ENUM:
        base = st.integers(min_value=-3, max_value=12)
    elif field.type == FieldDescriptor.TYPE_BOOL:
        base = st.booleans()
    elif field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64):
        base = st.one_of(st.integers(0, 2000), st.integers(0, 2**32 - 1))
    else:
        base = st.integers(-(2**31), 2**31 - 1)
    if field.is_repeated:
        return st.lists(base, max_size=4)
    return base


def request_strategy(descriptor: Descriptor) -> st.SearchStrategy[dict[str, Any]]:
    fields = {f.name: field_strategy(f) for f in descriptor.fields if f.message_type is None}
    return st.fixed_dictionaries({}, optional=fields)


class ThreadedGateway:
    """A gateway on its own event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        settings_ = make_settings(sim_tick_ms=20)
        self.gateway: Gateway = asyncio.run_coroutine_threadsafe(
            start_gateway(settings_), self.loop
        ).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.stop(grace=1.0), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    server = ThreadedGateway()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.gateway.port}") as opened:
            yield opened
    finally:
        server.close()


def call(channel: grpc.Channel, method: Any, request: Any) -> grpc.StatusCode:
    path = f"/{SERVICE.full_name}/{method.name}"
    output = pb.DESCRIPTOR.message_types_by_name[method.output_type.name]
    serializer, deserializer = type(request).SerializeToString, output._concrete_class.FromString
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path, serializer, deserializer)(request, timeout=5)
            next(stream)
            stream.cancel()
        else:
            channel.unary_unary(path, serializer, deserializer)(request, timeout=5)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return, attr-defined]
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=[m.name for m in SERVICE.methods])
def test_random_requests_never_break_the_server(channel: grpc.Channel, method: Any) -> None:
    message_class = method.input_type._concrete_class

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(fields=request_strategy(method.input_type))
    def check(fields: dict[str, Any]) -> None:
        request = message_class(**fields)
        code = call(channel, method, request)
        assert code not in NEVER, (method.name, fields, code)

    check()
    status_code = call(channel, SERVICE.methods_by_name["GetStatus"], pb.GetStatusRequest())
    assert status_code == grpc.StatusCode.OK  # still serving
