"""Binance HMAC-SHA256 request signing (pure; the clock is passed in)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlencode


def sign(secret: str, total_params: str) -> str:
    """Lower-case hex HMAC-SHA256 of the exact query string + body that is sent."""
    return hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def encode_params(params: Sequence[tuple[str, str]]) -> str:
    # Percent-encode (spaces as %20), in the order given: Binance signs what is sent.
    return urlencode(list(params), quote_via=quote)


def signed_query(
    params: Sequence[tuple[str, str]], secret: str, timestamp_ms: int, recv_window_ms: int
) -> str:
    """The query string with recvWindow, timestamp and the signature appended last."""
    query = encode_params(
        [*params, ("recvWindow", str(recv_window_ms)), ("timestamp", str(timestamp_ms))]
    )
    return f"{query}&signature={sign(secret, query)}"


def signed_ws_params(
    params: Mapping[str, str | int], api_key: str, secret: str, timestamp_ms: int
) -> dict[str, str | int]:
    """A WebSocket API request's params with apiKey, timestamp and signature: the HMAC
    covers every other param as ``name=value`` sorted by name, joined by ``&``
    (WebSocket API "SIGNED request example (HMAC)")."""
    unsigned: dict[str, str | int] = {**params, "apiKey": api_key, "timestamp": timestamp_ms}
    payload = "&".join(f"{name}={unsigned[name]}" for name in sorted(unsigned))
    return {**unsigned, "signature": sign(secret, payload)}
