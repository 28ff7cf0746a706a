"""Path templates and request binding, without a server."""

from __future__ import annotations

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.http.binding import BadInput, message_to_json, request_from_http
from titan_grpc.http.routes import Route, compile_template, routes_of

SERVICE = pb.DESCRIPTOR.services_by_name["ExchangeService"]


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/api/exchange/status", "/api/exchange/status", {}),
        ("/api/exchange/status", "/api/exchange/status/", None),
        ("/a/{symbol}", "/a/BTC%2FUSDT", {"symbol": "BTC/USDT"}),
        ("/a/{symbol}", "/a/BTC/USDT", None),
        ("/v1/{name=shelves/*}/books", "/v1/shelves/s1/books", {"name": "shelves/s1"}),
        ("/v1/{path=files/**}", "/v1/files/a/b/c", {"path": "files/a/b/c"}),
        (
            "/v1/orderBooks/{symbol}:stream",
            "/v1/orderBooks/ETH-USDT:stream",
            {"symbol": "ETH-USDT"},
        ),
        ("/v1/orderBooks/{symbol}:stream", "/v1/orderBooks/ETH-USDT", None),
        ("/v1/{a.b}/x/{c}", "/v1/1/x/2", {"a.b": "1", "c": "2"}),
    ],
)
def test_templates_match_and_decode(
    template: str, path: str, expected: dict[str, str] | None
) -> None:
    assert compile_template(template).match(path) == expected


@pytest.mark.parametrize("template", ["no/slash", "/a/{x=}", "/a b"])
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match="path template"):
        compile_template(template)


def _route(name: str) -> Route:
    (route,) = [r for r in routes_of(list(SERVICE.methods)) if r.method.name == name]
    return route


def test_path_query_and_body_bind_to_the_request() -> None:
    route = _route("GetOrderStatus")
    request = request_from_http(
        route, {"order_id": "42"}, [("exchange", "binance"), ("symbol", "BTCUSDT")], b""
    )
    assert request == pb.GetOrderStatusRequest(order_id="42", exchange="binance", symbol="BTCUSDT")
    request = request_from_http(
        _route("ListOrders"),
        {},
        [("states", "JOURNAL_STATE_ACCEPTED"), ("states", "5"), ("limit", "3")],
        b"",
    )
    assert list(request.states) == [pb.JOURNAL_STATE_ACCEPTED, pb.JOURNAL_STATE_AMBIGUOUS]
    assert request.limit == 3
    body = b'{"exchange": "mock", "side": "SIDE_SELL", "client_order_id": "a", "postOnly": true}'
    request = request_from_http(_route("PlaceOrder"), {}, [], body)
    assert (request.side, request.client_order_id, request.post_only) == (pb.SIDE_SELL, "a", True)
    assert request_from_http(_route("TestConnections"), {}, [], b"") == pb.TestConnectionsRequest()


@pytest.mark.parametrize(
    ("name", "query", "field"),
    [
        ("GetOrderBook", [("depth", "-1")], "depth"),
        ("GetOrderBook", [("depth", "4294967296")], "depth"),
        ("GetOrderBook", [("symbol", "ETH-USDT")], "symbol"),  # already in the path
        ("ListOrders", [("states", "JOURNAL_STATE_NOPE")], "states"),
        ("ListOrders", [("limit", "1"), ("limit", "2")], "limit"),
        ("ListOrders", [("unknown.field", "1")], "unknown.field"),
    ],
)
def test_values_that_do_not_fit_their_field_are_refused(
    name: str, query: list[tuple[str, str]], field: str
) -> None:
    route = _route(name)
    path = dict.fromkeys(route.template.variables, "BTC-USDT")
    with pytest.raises(BadInput) as caught:
        request_from_http(route, path, query, b"")
    assert caught.value.field == field


def test_every_field_is_in_the_json_even_unset_ones() -> None:
    document = message_to_json(pb.GetMarketDataResponse(ticker=pb.Ticker(symbol="BTC-USDT")))
    assert document["ticker"]["symbol"] == "BTC-USDT"
    assert document["ticker"]["bidSize"] == ""
    assert "source" not in document["ticker"]  # unset messages stay absent (proto3 JSON)


def _custom_service() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="test/custom.proto", package="test", syntax="proto3"
    )
    inner = file.message_type.add(name="Inner")
    inner.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    outer = file.message_type.add(name="Outer")
    outer.field.add(
        name="inner",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".test.Inner",
    )
    outer.field.add(name="note", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    method = file.service.add(name="Custom").method.add(
        name="Update", input_type=".test.Outer", output_type=".test.Outer"
    )
    rule = http_pb2.HttpRule(patch="/v1/{inner.id}", body="inner", response_body="inner")
    rule.additional_bindings.add(put="/v1/alt/{inner.id}", body="*")
    method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    return file


def test_field_body_nested_path_and_additional_bindings() -> None:
    pool = descriptor_pool.Default()  # where google/api/annotations.proto already is
    pool.AddSerializedFile(_custom_service().SerializeToString())
    routes = routes_of(list(pool.FindServiceByName("test.Custom").methods))
    assert [(r.http_method, r.template.text, r.body) for r in routes] == [
        ("PATCH", "/v1/{inner.id}", "inner"),
        ("PUT", "/v1/alt/{inner.id}", "*"),
    ]
    patch = routes[0]
    request = request_from_http(patch, {"inner.id": "7"}, [("note", "hi")], b'{"id": "ignored"}')
    assert (request.inner.id, request.note) == ("7", "hi")  # the path wins over the body
    outer = message_factory.GetMessageClass(pool.FindMessageTypeByName("test.Outer"))
    assert message_to_json(outer(note="x"), patch.response_body) == {"id": ""}


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        (
            b'{"side": "UP"}',
            "side",
            '"UP" is not a valid Side (SIDE_UNSPECIFIED, SIDE_BUY, SIDE_SELL)',
        ),
        (b'{"qty": "1"}', "qty", "no such field"),
        (b'{"postOnly": 1.5}', "postOnly", "1.5 is not a valid bool"),
    ],
)
def test_body_errors_name_the_field_as_written(body: bytes, field: str, reason: str) -> None:
    with pytest.raises(BadInput) as caught:
        request_from_http(_route("PlaceOrder"), {}, [], body)
    assert (caught.value.field, caught.value.reason) == (field, reason)
