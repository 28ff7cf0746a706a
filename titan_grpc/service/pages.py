"""The paging fields of the list RPCs (AIP-158) as one PageRequest, and the token back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from titan_grpc import convert
from titan_grpc.errors import InvalidArgument
from titan_grpc.paging import PageRequest, decode_token, encode_token, fingerprint
from titan_grpc.service.base import DEFAULT_HISTORY, MAX_HISTORY


def wants_paging(request: Any) -> bool:
    """True when the caller used any paging field (else the list answers as before)."""
    return bool(
        request.page_size
        or request.page_token
        or request.HasField("start_time")
        or request.HasField("end_time")
    )


def _time(request: Any, name: str) -> datetime | None:
    if not request.HasField(name):
        return None
    stamp: Timestamp = getattr(request, name)
    if not 0 <= stamp.nanos < 1_000_000_000:
        raise InvalidArgument(name, "is not a valid timestamp")
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(name, "is out of range") from None


def page_request_from_proto(request: Any, kind: str, *filters: object) -> tuple[PageRequest, str]:
    """The page asked for and the fingerprint its tokens carry (``filters`` are the other
    request fields, which must repeat unchanged on every page)."""
    start, end = _time(request, "start_time"), _time(request, "end_time")
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("end_time", "must be after start_time")
    size = convert.bounded(
        request.page_size or request.limit,
        default=DEFAULT_HISTORY,
        maximum=MAX_HISTORY,
        field="page_size" if request.page_size else "limit",
    )
    digest = fingerprint(kind, start, end, *filters)
    cursor = decode_token(request.page_token, kind, digest) if request.page_token else {}
    return PageRequest(size=size, start=start, end=end, cursor=cursor), digest


def next_page_token(kind: str, digest: str, cursor: Mapping[str, str] | None) -> str:
    return "" if cursor is None else encode_token(kind, digest, cursor)
