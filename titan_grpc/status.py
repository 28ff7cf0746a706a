"""The one place where TITAN errors become gRPC status codes with rich details."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from titan_grpc import errors
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

ERROR_DOMAIN = "titan.v1"
# Error text goes out in trailers (percent-encoded, then base64 in the details): kept
# short so a client's metadata limit (8-16 KB) never replaces the real error.
MAX_MESSAGE_BYTES = 512
MAX_DETAIL_BYTES = 256


def _clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "..."


# Most specific classes first: the first isinstance match wins.
_CODES: tuple[tuple[type[errors.TitanError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.UnknownSymbol, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidOrder, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotConfigured, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.FeatureUnavailable, grpc.StatusCode.UNIMPLEMENTED),
    (errors.AuthenticationError, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.InsufficientFunds, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.OrderRejected, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.OrderNotCancelable, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.VenueLacksFeature, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.DuplicateOrder, grpc.StatusCode.ALREADY_EXISTS),
    (errors.OrderNotFound, grpc.StatusCode.NOT_FOUND),
    (errors.ExchangeUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.AmbiguousOutcome, grpc.StatusCode.UNAVAILABLE),
    (errors.StoreUnavailable, grpc.StatusCode.UNAVAILABLE),
    # A venue error nobody classified: the venue's words are kept, the code says so.
    (errors.ExchangeError, grpc.StatusCode.UNKNOWN),
)


def status_code_for(error: errors.TitanError) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _reason(error: errors.TitanError) -> str:
    name = type(error).__name__
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()


def _field_of(error: errors.TitanError) -> str:
    if isinstance(error, errors.InvalidArgument):
        return error.field
    if isinstance(error, errors.InvalidOrder):
        return error.field
    if isinstance(error, errors.UnknownSymbol):
        return "symbol"
    return ""


def to_grpc_status(error: errors.TitanError) -> grpc.Status:
    code = status_code_for(error)
    field = _field_of(error)
    field = _clip(field, MAX_DETAIL_BYTES)
    message = error.message
    if code is grpc.StatusCode.INVALID_ARGUMENT and field and not message.startswith(field + ":"):
        message = f"{field}: {message}"  # the field leads every INVALID_ARGUMENT message
    status = status_pb2.Status(code=code.value[0], message=_clip(message, MAX_MESSAGE_BYTES))
    if code is grpc.StatusCode.INVALID_ARGUMENT and field:
        reason = error.reason if isinstance(error, errors.InvalidArgument) else error.message
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=field, description=_clip(reason, MAX_MESSAGE_BYTES)
                    )
                ]
            )
        )
    metadata: dict[str, str] = {}
    if isinstance(error, errors.ExchangeError):
        for key, value in (
            ("exchange", error.exchange),
            ("venue_code", error.venue_code),
            ("venue_message", error.venue_message),
        ):
            if value:
                metadata[key] = _clip(value, MAX_DETAIL_BYTES)
    if isinstance(error, errors.NotConfigured) and error.variable:
        metadata["variable"] = error.variable
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=_reason(error), domain=ERROR_DOMAIN, metadata=metadata)
    )
    if isinstance(error, errors.RateLimited) and error.retry_after > 0:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(error.retry_after * 1e9))
        status.details.add().Pack(retry)
    converted: grpc.Status = rpc_status.to_status(status)
    return converted


def venue_error_to_proto(exchange: str, error: BaseException) -> pb.VenueError:
    """A per-venue error inside a multi-venue answer."""
    if isinstance(error, errors.TitanError):
        code = status_code_for(error)
        venue_code = error.venue_code if isinstance(error, errors.ExchangeError) else ""
        return pb.VenueError(
            exchange=exchange,
            code=code.name,
            message=_clip(error.message, MAX_MESSAGE_BYTES),
            venue_code=venue_code,
        )
    if isinstance(error, TimeoutError):
        return pb.VenueError(
            exchange=exchange, code=grpc.StatusCode.DEADLINE_EXCEEDED.name, message="timed out"
        )
    return pb.VenueError(
        exchange=exchange, code=grpc.StatusCode.INTERNAL.name, message="internal error"
    )
