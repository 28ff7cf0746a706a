"""Serving ExchangeService on a gRPC server: the transport's edge.

Three duties sit here because here they cost least (bench/NOTES.md, "Where a unary
call's time goes"):

- Parsing never raises. The generated ``add_ExchangeServiceServicer_to_server`` parses
  with ``FromString``: a body that is not valid protobuf raises inside grpc, which answers
  UNKNOWN ("Unexpected <class DecodeError>") and logs a traceback per call. Here it
  becomes an ``Inadmissible`` marker that the ``unary``/``streaming`` decorators answer
  with INVALID_ARGUMENT, like any other bad input.
- The edge bounds (convert.check_request_bounds) are checked where the body is parsed:
  its length is known there for free, and a body shorter than the smallest bound cannot
  break one, so a usual request costs no check at all.
- The caller's ``x-request-id`` is read from the metadata grpc has already decoded to
  find the method (``HandlerCallDetails``), and handed to the call through
  ``logs.caller_request_id``: grpc.aio resolves the method and runs the handler in the
  same task. Asking the call's context for its metadata again would decode it again,
  about a twentieth of a cache hit's server time. This is why the methods are served
  by a generic handler and not registered (``add_registered_method_handlers``): grpc
  looks registered methods up without asking any generic handler.

The other services (health, reflection, channelz) are not registered either
(``GenericHandlersOnly``): every registered method costs every call its server accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from titan_grpc import convert
from titan_grpc.errors import Inadmissible, InvalidArgument
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.logs import caller_request_id, request_id_in

SERVICE: ServiceDescriptor = pb.DESCRIPTOR.services_by_name["ExchangeService"]


def admitting_parser(message_class: Any) -> Callable[[bytes], Any]:
    """``message_class.FromString`` that checks the edge bounds and, instead of raising,
    returns an ``Inadmissible`` for a body it refuses."""
    name = message_class.DESCRIPTOR.full_name

    def parse(data: bytes) -> Any:
        try:
            message = message_class.FromString(data)
        except Exception:  # DecodeError, bad UTF-8, nesting limits: all the caller's doing
            return Inadmissible(
                InvalidArgument(
                    "request",
                    f"the {len(data)}-byte body is not a valid {name} (malformed protobuf)",
                )
            )
        if len(data) > convert.WITHIN_BOUNDS_BYTES:
            try:
                convert.check_request_bounds(message)
            except InvalidArgument as error:
                return Inadmissible(error)
        return message

    return parse


def method_handlers(servicer: Any) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """One handler per RPC of the contract, each parsing its request with the edge checks."""
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
            request_deserializer=admitting_parser(request_class),
            response_serializer=response_class.SerializeToString,
        )
    return handlers


class ExchangeServiceHandler(grpc.GenericRpcHandler):
    """Finds ExchangeService's methods for the server, noting the caller's request id."""

    def __init__(self, servicer: Any) -> None:
        self._by_path = {
            f"/{SERVICE.full_name}/{name}": handler
            for name, handler in method_handlers(servicer).items()
        }

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = self._by_path.get(handler_call_details.method)
        if handler is not None:
            caller_request_id.set(request_id_in(handler_call_details.invocation_metadata or ()))
        return handler


class GenericHandlersOnly:
    """Stands in for the server when grpc's generated ``add_…Servicer_to_server`` helpers
    add a service: they add it twice, as a generic handler and as registered methods, and
    only the generic handler is kept; it serves the same methods.

    Why: grpc.aio's accept loop keeps one pending request per registered method, plus
    one for all unregistered methods, and waits on all of them with ``asyncio.wait`` for
    each call it accepts, so each registered method costs every call, ExchangeService's
    included (bench/NOTES.md). With none registered it waits on one.
    """

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        """Not registered: the generic handler added with them serves these methods."""


def add_to_server(servicer: Any, server: grpc.aio.Server) -> None:
    """Serve ``servicer``'s RPCs on ``server``. Add it before other services: grpc asks
    generic handlers in the order they were added."""
    server.add_generic_rpc_handlers((ExchangeServiceHandler(servicer),))
