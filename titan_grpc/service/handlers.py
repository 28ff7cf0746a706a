"""Registering ExchangeService on a server with request parsers that never raise.

The generated ``add_ExchangeServiceServicer_to_server`` parses with ``FromString``: a body
that is not valid protobuf raises inside grpc, which answers UNKNOWN ("Unexpected <class
DecodeError>") and logs a traceback per call. Here an unreadable body becomes an
``Undecodable`` marker that the ``unary``/``streaming`` decorators answer with
INVALID_ARGUMENT, like any other bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

SERVICE: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["ExchangeService"]


@dataclass(frozen=True, slots=True)
class Undecodable:
    """What a request parser hands on when the body is not a valid ``message_name``."""

    message_name: str
    size: int


def tolerant_parser(message_class: Any) -> Callable[[bytes], Any]:
    """``message_class.FromString`` returning an ``Undecodable`` instead of raising."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except Exception:  # DecodeError, bad UTF-8, nesting limits: all the caller's doing
            return Undecodable(name, len(data))

    return parse


def method_handlers(servicer: Any) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """One handler per RPC of the contract, each parsing its request tolerantly."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in SERVICE.methods:
        if method.client_streaming:
            raise NotImplementedError(f"{method.name}: client streaming is not wired here")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        make = (
            grpc.unary_stream_rpc_method_handler
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler
        )
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=tolerant_parser(request_class),
            response_serializer=response_class.SerializeToString,
        )
    return handlers


def add_to_server(servicer: Any, server: grpc.aio.Server) -> None:
    """What ``add_ExchangeServiceServicer_to_server`` does, with tolerant parsers."""
    handlers = method_handlers(servicer)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
