"""Paged history (AIP-158): what a page asks for, what it answers, and the opaque token.

A list RPC hands its caller ``next_page_token``; the token carries the venue's own cursor
(Coinbase's CB-AFTER, KuCoin's lastId or page number, Binance's trade id, ...) plus a
fingerprint of the request's other fields, so a token is only accepted back with the same
request it was issued for. Tokens are base64url JSON: opaque to callers, never trusted
beyond their shape (a forged cursor can only select a different page of the caller's own
data).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from titan_grpc.errors import InvalidArgument

T = TypeVar("T")
_VERSION = 1
MAX_TOKEN_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One page: at most ``size`` items with start <= time < end, after ``cursor``."""

    size: int
    start: datetime | None = None
    end: datetime | None = None
    cursor: Mapping[str, str] = field(default_factory=dict)  # empty: the first page

    def covers(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) and (
            self.end is None or moment < self.end
        )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    cursor: Mapping[str, str] | None  # where the next page starts; None on the last page


def fingerprint(*fields: object) -> str:
    """A short digest of the request fields that must not change between pages."""
    text = json.dumps([str(f) for f in fields], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_token(kind: str, digest: str, cursor: Mapping[str, str]) -> str:
    body = {"v": _VERSION, "k": kind, "f": digest, "c": dict(cursor)}
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(
    token: str, kind: str, digest: str, field_name: str = "page_token"
) -> dict[str, str]:
    """The cursor inside ``token``; INVALID_ARGUMENT naming the field when it is not one
    this server issued for the same request."""
    text = token.strip()
    if len(text) > MAX_TOKEN_LENGTH:
        raise InvalidArgument(field_name, "is not a page token this server issued")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument(field_name, "is not a page token this server issued") from None
    cursor = body.get("c") if isinstance(body, dict) else None
    if (
        not isinstance(body, dict)
        or body.get("v") != _VERSION
        or body.get("k") != kind
        or not isinstance(cursor, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in cursor.items())
    ):
        raise InvalidArgument(field_name, "is not a page token this server issued")
    if body.get("f") != digest:
        raise InvalidArgument(
            field_name,
            "was issued for a different request; repeat the other fields of the first page",
        )
    return cursor


def cursor_int(cursor: Mapping[str, str], key: str, field_name: str = "page_token") -> int:
    """An integer a cursor must hold (a forged token answers INVALID_ARGUMENT)."""
    value = cursor.get(key, "")
    if not value.isdigit() or len(value) > 20:
        raise InvalidArgument(field_name, "is not a page token this server issued")
    return int(value)


def page_back(rows: list[T], page: PageRequest, wanted: Callable[[T], bool]) -> Page[T]:
    """A page of ``rows`` (append-only, oldest first) that ``wanted`` keeps, newest first:
    walked backwards from the cursor's position, which the next page's cursor holds."""
    position = min(cursor_int(page.cursor, "before"), len(rows)) if page.cursor else len(rows)
    items: list[T] = []
    while position > 0 and len(items) < page.size:
        position -= 1
        if wanted(rows[position]):
            items.append(rows[position])
    more = position > 0 and len(items) == page.size
    return Page(items, {"before": str(position)} if more else None)
