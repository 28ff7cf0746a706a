"""Page tokens: opaque, bound to the request they were issued for, checked on the way in."""

from __future__ import annotations

import base64
import json

import pytest

from titan_grpc.errors import InvalidArgument
from titan_grpc.paging import cursor_int, decode_token, encode_token, fingerprint


def test_a_token_carries_the_cursor_back() -> None:
    digest = fingerprint("trades", "binance", "BTC-USDT")
    token = encode_token("trades", digest, {"from_id": "1234"})
    assert "=" not in token and "1234" not in token  # opaque, URL-safe
    assert decode_token(token, "trades", digest) == {"from_id": "1234"}


@pytest.mark.parametrize(
    "token",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(json.dumps({"v": 2, "k": "trades", "c": {}}).encode()).decode(),
        base64.urlsafe_b64encode(
            json.dumps({"v": 1, "k": "trades", "f": "x", "c": {"a": 1}}).encode()
        ).decode(),
        "A" * 5000,
    ],
)
def test_anything_else_is_invalid_argument_naming_the_field(token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_token(token, "trades", fingerprint("trades"))
    assert caught.value.field == "page_token"


def test_a_token_is_refused_for_another_request_or_rpc() -> None:
    token = encode_token("trades", fingerprint("trades", "BTC-USDT"), {"after": "9"})
    with pytest.raises(InvalidArgument, match="different request"):
        decode_token(token, "trades", fingerprint("trades", "ETH-USDT"))
    with pytest.raises(InvalidArgument):
        decode_token(token, "ledger", fingerprint("trades", "BTC-USDT"))


def test_numeric_cursors_are_checked() -> None:
    assert cursor_int({"before": "42"}, "before") == 42
    for bad in ({"before": "-1"}, {"before": "1e9"}, {}, {"before": "9" * 30}):
        with pytest.raises(InvalidArgument):
            cursor_int(bad, "before")
