"""Hostile input over a real channel: unreadable bodies, huge fields, values that must not be
echoed whole. Every one gets a short, clear answer and no work is done for it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.conftest import make_settings
from tests.helpers import bad_request_fields, expect_error
from titan_grpc.config import load_settings
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway, start_gateway

SERVICE = "/titan.v1.ExchangeService/"
READER = "reader-token-0123456789"
# Not protobuf: a field tag with an unterminated varint, then a length past the end.
GARBAGE = [b"\xff\xff\xff", b"\x0a\xff\xff\xff\x0f", b"\x0a\x05ab"]


async def raw_call(channel: grpc.aio.Channel, method: str, body: bytes, **kwargs: object) -> None:
    """Send ``body`` as is (identity serializers), as a hostile client would."""
    if method.startswith("Stream"):
        stream = channel.unary_stream(SERVICE + method)(body, timeout=5, **kwargs)
        await stream.read()
        stream.cancel()
    else:
        await channel.unary_unary(SERVICE + method)(body, timeout=5, **kwargs)


@pytest.mark.parametrize("method", ["GetStatus", "PlaceOrder", "ListOrders", "StreamQuotes"])
async def test_an_undecodable_body_is_invalid_argument_without_a_traceback(
    channel: grpc.aio.Channel, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for body in GARBAGE:
        error = await expect_error(
            raw_call(channel, method, body), grpc.StatusCode.INVALID_ARGUMENT
        )
        details = error.details() or ""
        assert details.startswith("request: ") and "malformed protobuf" in details
        assert "class" not in details and "DecodeError" not in details
        assert bad_request_fields(error) == ["request"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.fixture
async def secured() -> AsyncIterator[Gateway]:
    grants = load_settings({"TITAN_AUTH_TOKENS": f"{READER}:read"}, env_file=None).auth_grants
    gateway = await start_gateway(make_settings(auth_grants=grants))
    try:
        yield gateway
    finally:
        await gateway.stop(grace=0.5)


async def test_with_auth_a_stranger_is_unauthenticated_whatever_the_body(
    secured: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        for method in ("GetStatus", "PlaceOrder", "StreamQuotes"):
            for body in GARBAGE:
                await expect_error(raw_call(channel, method, body), grpc.StatusCode.UNAUTHENTICATED)
        # A caller with a token still learns that the body is bad.
        await expect_error(
            raw_call(
                channel,
                "GetStatus",
                GARBAGE[0],
                metadata=(("authorization", f"Bearer {READER}"),),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_list_orders_with_a_quarter_million_states_is_refused_at_the_edge(
    stub: pb_grpc.ExchangeServiceStub,
) -> None:
    request = pb.ListOrdersRequest(states=[pb.JOURNAL_STATE_ACCEPTED] * 250_001)
    error = await expect_error(stub.ListOrders(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["states"]
    assert "at most 64" in (error.details() or "")


async def test_repeated_states_count_once(stub: pb_grpc.ExchangeServiceStub) -> None:
    request = pb.ListOrdersRequest(states=[pb.JOURNAL_STATE_ACCEPTED] * 64)
    assert list((await stub.ListOrders(request)).orders) == []


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.ListOrders(pb.ListOrdersRequest(symbol="B" * 100_000)), "symbol"),
        (
            lambda s: s.GetBalances(pb.GetBalancesRequest(exchanges=["binance"] * 65)),
            "exchanges",
        ),
        (
            lambda s: s.StreamQuotes(pb.StreamQuotesRequest(symbols=["BTC-USDT"] * 1000)).read(),
            "symbols",
        ),
        (
            lambda s: s.GetMarketData(
                pb.GetMarketDataRequest(symbol="BTC-USDT", exchange="x" * 5000)
            ),
            "exchange",
        ),
    ],
)
async def test_oversized_fields_are_refused_naming_the_field(
    stub: pb_grpc.ExchangeServiceStub, call: object, field: str
) -> None:
    error = await expect_error(call(stub), grpc.StatusCode.INVALID_ARGUMENT)  # type: ignore[operator]
    assert bad_request_fields(error) == [field]
    assert len(error.details() or "") < 200


def _all_error_text(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    text = [status.message]
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            text.extend(v.description for v in bad_request.field_violations)
    return "\n".join(text)


@pytest.mark.parametrize(
    ("make", "length"),
    [
        (lambda v: pb.GetMarketDataRequest(symbol=v, exchange="binance"), 1000),
        (lambda v: pb.GetMarketDataRequest(symbol="BTC-USDT", exchange=v), 1000),
        (lambda v: pb.GetPortfolioValueRequest(quote_asset=v), 1000),
        (lambda v: pb.FindBestPriceRequest(symbol="BTC-USDT", side=pb.SIDE_BUY, quantity=v), 90),
    ],
)
async def test_errors_quote_a_short_escaped_prefix_never_the_whole_value(
    channel: grpc.aio.Channel, make: object, length: int
) -> None:
    # 1,000 non-ASCII characters are about 9 KB once percent-encoded in a trailer. Echoed
    # whole, a default client got RESOURCE_EXHAUSTED instead of the real error.
    value = "€" * length
    request = make(value)  # type: ignore[operator]
    method = {
        pb.GetMarketDataRequest: "GetMarketData",
        pb.GetPortfolioValueRequest: "GetPortfolioValue",
        pb.FindBestPriceRequest: "FindBestPrice",
    }[type(request)]
    error = await expect_error(
        raw_call(channel, method, request.SerializeToString()), grpc.StatusCode.INVALID_ARGUMENT
    )
    text = _all_error_text(error)
    assert "€" not in text and "\\u20ac" in text and f"({length} characters)" in text
    assert len((error.details() or "").encode()) < 1024


async def test_non_ascii_digits_are_not_a_price(stub: pb_grpc.ExchangeServiceStub) -> None:
    request = pb.PlaceOrderRequest(
        exchange="binance",
        symbol="BTC-USDT",
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_LIMIT,
        quantity="٣.٥",  # Arabic-Indic 3.5
        price="30000",
    )
    error = await expect_error(stub.PlaceOrder(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["quantity"]
    assert '"\\u0663.\\u0665" is not a decimal number' in (error.details() or "")


async def test_a_client_order_id_with_a_trailing_newline_is_refused(
    stub: pb_grpc.ExchangeServiceStub,
) -> None:
    request = pb.GetOrderStatusRequest(exchange="binance", client_order_id="abc\n")
    error = await expect_error(stub.GetOrderStatus(request), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["client_order_id"]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.GetOrderStatus(
            pb.GetOrderStatusRequest(exchange="binance", order_id="\U0001f600" * 128)
        ),
        lambda s: s.CancelOrder(pb.CancelOrderRequest(exchange="binance", order_id="12\x0034")),
        lambda s: s.ListTrades(pb.ListTradesRequest(exchange="binance", order_id="é" * 100)),
    ],
)
async def test_order_ids_are_printable_ascii(stub: pb_grpc.ExchangeServiceStub, call: Any) -> None:
    # Echoed in a NOT_FOUND message, 128 emoji were 1.5 KB of trailer.
    error = await expect_error(call(stub), grpc.StatusCode.INVALID_ARGUMENT)
    assert bad_request_fields(error) == ["order_id"]


def test_no_error_message_passes_512_bytes_whatever_a_venue_says() -> None:
    from titan_grpc.errors import ExchangeUnavailable
    from titan_grpc.status import to_grpc_status

    status = to_grpc_status(ExchangeUnavailable("日本" * 1000, venue_message="x" * 5000))
    assert len(status.details.encode()) <= 512
    assert status.details.endswith("...")
