"""HTTP/JSON transcoding (TITAN_HTTP_ADDRESS) on a real gateway over loopback: the original
curl examples run verbatim with real curl and answer what gRPC answers, every RPC is
reachable, bad input is HTTP 400 with gRPC's message, SSE streams, auth, OpenAPI."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from google.api import annotations_pb2
from google.protobuf import json_format
from google.protobuf.message import Message

from tests.conftest import make_settings
from tests.helpers import bad_request_fields, expect_error
from tests.integration.test_access import issue, make_ca, pem, write
from tests.integration.test_streams import assert_matches_world, until
from titan_grpc.config import load_settings
from titan_grpc.errors import ConfigError
from titan_grpc.exchanges.simulated import SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.http.routes import routes_of
from titan_grpc.http.transcoder import MAX_BODY_BYTES
from titan_grpc.server import Gateway, check_startup_rules, start_gateway

SERVICE = pb.DESCRIPTOR.services_by_name["ExchangeService"]
JSON = '-H "Content-Type: application/json"'


@pytest.fixture
async def gateway(world: SimulatedWorld) -> AsyncIterator[Gateway]:
    running = await start_gateway(make_settings(http_address="127.0.0.1:0"), world=world)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


def base_url(gateway: Gateway) -> str:
    assert gateway.http is not None
    return f"http://127.0.0.1:{gateway.http.port}"


async def run_curl(example: str, gateway: Gateway) -> Any:
    """Run a README-style curl line as written, only host and port substituted."""
    assert shutil.which("curl"), "curl is needed (make test installs it)"
    assert gateway.http is not None
    command = shlex.split(example.replace("localhost:3000", f"127.0.0.1:{gateway.http.port}"))
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return json.loads(out)


def without_clock(message: Message) -> Message:
    """The message with every Timestamp/Duration cleared: they differ between two calls."""
    copy = type(message)()
    copy.CopyFrom(message)
    _clear_clock(copy)
    return copy


def _clear_clock(message: Message) -> None:
    for field, value in message.ListFields():
        kind = field.message_type
        if kind is None:
            continue
        if kind.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
            message.ClearField(field.name)
        elif field.is_repeated:
            for item in value:
                _clear_clock(item)
        else:
            _clear_clock(value)


def from_json(document: Any, method: str) -> Message:
    response = getattr(pb, SERVICE.methods_by_name[method].output_type.name)()
    json_format.ParseDict(document, response)
    return response


READ_EXAMPLES = [
    ('curl "http://localhost:3000/api/exchange/status"', "GetStatus", pb.GetStatusRequest()),
    (
        'curl -X POST "http://localhost:3000/api/exchange/test-connections"',
        "TestConnections",
        pb.TestConnectionsRequest(),
    ),
    (
        "curl -X POST http://localhost:3000/api/exchange/test-auth "
        f'{JSON} -d \'{{"exchanges": ["binance", "kucoin"]}}\'',
        "TestAuth",
        pb.TestAuthRequest(exchanges=["binance", "kucoin"]),
    ),
    (
        'curl "http://localhost:3000/api/exchange/market-data/BTCUSDT?exchange=mock"',
        "GetMarketData",
        pb.GetMarketDataRequest(symbol="BTCUSDT", exchange="mock"),
    ),
    (
        'curl "http://localhost:3000/api/exchange/aggregated-market-data/BTCUSDT"',
        "GetAggregatedMarketData",
        pb.GetAggregatedMarketDataRequest(symbol="BTCUSDT"),
    ),
    (
        'curl "http://localhost:3000/api/exchange/order-book/ETH-USDT?exchange=kucoin&depth=5"',
        "GetOrderBook",
        pb.GetOrderBookRequest(symbol="ETH-USDT", exchange="kucoin", depth=5),
    ),
    (
        'curl "http://localhost:3000/api/exchange/balances?exchanges=binance&exchanges=coinbase"',
        "GetBalances",
        pb.GetBalancesRequest(exchanges=["binance", "coinbase"]),
    ),
    (
        'curl "http://localhost:3000/api/exchange/portfolio-value?quote_asset=USDT"',
        "GetPortfolioValue",
        pb.GetPortfolioValueRequest(quote_asset="USDT"),
    ),
    (
        "curl -X POST http://localhost:3000/api/exchange/find-best-price "
        f'{JSON} -d \'{{"symbol": "BTCUSDT", "side": "SIDE_BUY", "quantity": "0.5"}}\'',
        "FindBestPrice",
        pb.FindBestPriceRequest(symbol="BTCUSDT", side=pb.SIDE_BUY, quantity="0.5"),
    ),
    (
        "curl -X POST http://localhost:3000/api/exchange/smart-routing "
        f'{JSON} -d \'{{"symbol": "BTC-USDT", "side": "SIDE_SELL", '
        '"type": "ORDER_TYPE_MARKET", "quantity": "3"}\'',
        "PlanRoute",
        pb.PlanRouteRequest(
            symbol="BTC-USDT", side=pb.SIDE_SELL, type=pb.ORDER_TYPE_MARKET, quantity="3"
        ),
    ),
]


@pytest.mark.parametrize(("example", "method", "request_message"), READ_EXAMPLES)
async def test_original_curl_examples_answer_what_grpc_answers(
    gateway: Gateway,
    stub: pb_grpc.ExchangeServiceStub,
    example: str,
    method: str,
    request_message: Message,
) -> None:
    over_http = from_json(await run_curl(example, gateway), method)
    over_grpc = await getattr(stub, method)(request_message)
    assert without_clock(over_http) == without_clock(over_grpc)
    assert over_http.ByteSize() > 0


async def test_original_order_curl_examples_place_query_and_cancel(
    gateway: Gateway, stub: pb_grpc.ExchangeServiceStub
) -> None:
    placed = await run_curl(
        "curl -X POST http://localhost:3000/api/exchange/place-order "
        f'{JSON} -d \'{{"exchange": "binance", "symbol": "BTCUSDT", "side": "SIDE_BUY", '
        '"type": "ORDER_TYPE_LIMIT", "quantity": "0.01", "price": "30000", '
        '"clientOrderId": "curl-order-1"}\'',
        gateway,
    )
    order = placed["order"]
    assert (order["clientOrderId"], order["status"]) == ("curl-order-1", "ORDER_STATUS_NEW")
    assert (order["price"], order["quantity"], order["simulated"]) == ("30000", "0.01", True)

    status_example = (
        'curl "http://localhost:3000/api/exchange/order-status/'
        f'{order["orderId"]}?exchange=binance&symbol=BTCUSDT"'
    )
    over_grpc = await stub.GetOrderStatus(
        pb.GetOrderStatusRequest(exchange="binance", symbol="BTCUSDT", order_id=order["orderId"])
    )
    over_http = from_json(await run_curl(status_example, gateway), "GetOrderStatus")
    assert without_clock(over_http) == without_clock(over_grpc)

    canceled = await run_curl(
        "curl -X POST http://localhost:3000/api/exchange/cancel-order "
        f'{JSON} -d \'{{"exchange": "binance", "symbol": "BTCUSDT", '
        '"clientOrderId": "curl-order-1"}\'',
        gateway,
    )
    assert canceled["order"]["status"] == "ORDER_STATUS_CANCELED"
    after = await stub.GetOrderStatus(
        pb.GetOrderStatusRequest(
            exchange="binance", symbol="BTCUSDT", client_order_id="curl-order-1"
        )
    )
    assert without_clock(from_json(canceled, "CancelOrder").order) == without_clock(after.order)


def test_every_rpc_has_an_http_route_in_the_proto() -> None:
    """New RPCs need a google.api.http annotation (an unannotated one is still reachable
    at POST /titan.v1.ExchangeService/<Method>, but that is not a route users should see)."""
    missing = [
        m.name for m in SERVICE.methods if not m.GetOptions().HasExtension(annotations_pb2.http)
    ]
    assert not missing, f"add option (google.api.http) to: {missing}"


def _sample_url(template: str, variables: tuple[str, ...], base: str) -> str:
    url = template
    for variable in variables:
        start = url.index("{" + variable)
        url = url[:start] + "BTC-USDT" + url[url.index("}", start) + 1 :]
    return base + url


async def test_every_rpc_is_reachable_over_http(gateway: Gateway) -> None:
    """Iterates the service descriptor: each RPC's route reaches the servicer, whose request
    id (x-request-id) comes back, with its answer or a google.rpc.Status."""
    routes = routes_of(list(SERVICE.methods))
    assert {route.method.name for route in routes} == {m.name for m in SERVICE.methods}
    async with aiohttp.ClientSession() as session:
        for route in routes:
            url = _sample_url(route.template.text, route.template.variables, base_url(gateway))
            body = {} if route.body else None
            async with session.request(route.http_method, url, json=body) as response:
                assert response.headers.get("x-request-id"), (route.method.name, response.status)
                if route.server_streaming and response.status == 200:
                    assert response.content_type == "text/event-stream"
                    first_line = await response.content.readline()
                    assert first_line.startswith((b"data: {", b": keep-alive")), first_line
                    continue
                document = await response.json()
                if response.status != 200:
                    assert document["code"] != 0 and document["message"], document
                else:
                    from_json(document, route.method.name)


BAD_INPUTS = [
    (
        "GET",
        "/api/exchange/market-data/NOPE?exchange=mock",
        None,
        "GetMarketData",
        pb.GetMarketDataRequest(symbol="NOPE", exchange="mock"),
    ),
    (
        "GET",
        "/api/exchange/market-data/BTCUSDT?exchange=nasdaq",
        None,
        "GetMarketData",
        pb.GetMarketDataRequest(symbol="BTCUSDT", exchange="nasdaq"),
    ),
    (
        "POST",
        "/api/exchange/place-order",
        {
            "exchange": "binance",
            "symbol": "BTC-USDT",
            "side": "SIDE_BUY",
            "type": "ORDER_TYPE_LIMIT",
            "quantity": "-1",
            "price": "30000",
        },
        "PlaceOrder",
        pb.PlaceOrderRequest(
            exchange="binance",
            symbol="BTC-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_LIMIT,
            quantity="-1",
            price="30000",
        ),
    ),
    (
        "POST",
        "/api/exchange/find-best-price",
        {"symbol": "BTC-USDT", "side": "SIDE_BUY", "quantity": "NaN"},
        "FindBestPrice",
        pb.FindBestPriceRequest(symbol="BTC-USDT", side=pb.SIDE_BUY, quantity="NaN"),
    ),
    # The edge bounds hold over HTTP as over gRPC, where each transport parses the body.
    (
        "POST",
        "/api/exchange/find-best-price",
        {"symbol": "BTC-USDT", "side": "SIDE_BUY", "quantity": "1" * 2000},
        "FindBestPrice",
        pb.FindBestPriceRequest(symbol="BTC-USDT", side=pb.SIDE_BUY, quantity="1" * 2000),
    ),
    (
        "POST",
        "/api/exchange/test-auth",
        {"exchanges": ["binance"] * 65},
        "TestAuth",
        pb.TestAuthRequest(exchanges=["binance"] * 65),
    ),
]


@pytest.mark.parametrize(("verb", "path", "body", "method", "request_message"), BAD_INPUTS)
async def test_bad_input_is_http_400_with_the_grpc_message(
    gateway: Gateway,
    stub: pb_grpc.ExchangeServiceStub,
    verb: str,
    path: str,
    body: Any,
    method: str,
    request_message: Message,
) -> None:
    error = await expect_error(
        getattr(stub, method)(request_message), grpc.StatusCode.INVALID_ARGUMENT
    )
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            verb, base_url(gateway) + path, json=body, headers={"x-request-id": "bad-1"}
        ) as response,
    ):
        assert response.status == 400
        assert response.content_type == "application/json"
        assert response.headers["x-request-id"] == "bad-1"  # refused at the edge or later
        status = await response.json()
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status["message"] == error.details()
    violations = [
        v["field"]
        for d in status["details"]
        if d["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        for v in d["fieldViolations"]
    ]
    assert violations == bad_request_fields(error)


@pytest.mark.parametrize(
    ("verb", "path", "body", "field"),
    [
        ("GET", "/api/exchange/order-book/BTCUSDT?exchange=binance&depth=lots", None, "depth"),
        ("GET", "/api/exchange/order-book/BTCUSDT?exchnage=binance", None, "exchnage"),
        ("GET", "/v1/orders?states=JOURNAL_STATE_BOGUS", None, "states"),
        ("GET", "/api/exchange/market-data/BTCUSDT?exchange=a&exchange=b", None, "exchange"),
        ("POST", "/api/exchange/place-order", "{not json", "body"),
        ("POST", "/api/exchange/place-order", '["a list"]', "body"),
        ("POST", "/api/exchange/place-order", '{"qty": "1"}', "qty"),
        ("POST", "/api/exchange/place-order", '{"side": "UP"}', "side"),
        ("POST", "/api/exchange/place-order", '{"postOnly": "yes"}', "postOnly"),
        ("POST", "/api/exchange/test-auth", '{"exchanges": "binance"}', "exchanges"),
        ("POST", "/api/exchange/place-order?exchange=binance", "{}", "exchange"),
    ],
)
async def test_input_the_transcoder_cannot_bind_is_400_naming_the_field(
    gateway: Gateway, verb: str, path: str, body: str | None, field: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            verb, base_url(gateway) + path, data=body, headers={"x-request-id": "unbound-1"}
        ) as response,
    ):
        assert response.status == 400
        assert response.headers["x-request-id"] == "unbound-1"
        status = await response.json()
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status["message"].startswith(f"{field}: "), status["message"]
    assert status["details"][0]["fieldViolations"][0]["field"] == field


async def test_query_parameters_bind_repeated_fields_and_enums_by_name_or_number(
    gateway: Gateway, stub: pb_grpc.ExchangeServiceStub
) -> None:
    await stub.PlaceOrder(
        pb.PlaceOrderRequest(
            exchange="kucoin",
            symbol="ETH-USDT",
            side=pb.SIDE_BUY,
            type=pb.ORDER_TYPE_LIMIT,
            quantity="0.5",
            price="900",
            client_order_id="http-list-1",
        )
    )
    async with aiohttp.ClientSession() as session:
        for query in (
            "states=JOURNAL_STATE_ACCEPTED&states=JOURNAL_STATE_AMBIGUOUS&exchange=kucoin",
            "states=2&states=5&exchange=kucoin&limit=10",
        ):
            async with session.get(f"{base_url(gateway)}/v1/orders?{query}") as response:
                assert response.status == 200, await response.text()
                listed = from_json(await response.json(), "ListOrders")
            assert [o.client_order_id for o in listed.orders] == ["http-list-1"]
            assert listed.orders[0].intent.side == pb.SIDE_BUY


async def test_unknown_route_and_wrong_verb_are_status_json(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(base_url(gateway) + "/api/exchange/nowhere") as response:
            assert response.status == 404
            assert (await response.json())["code"] == grpc.StatusCode.NOT_FOUND.value[0]
            assert re.fullmatch(r"[0-9a-f]{8}-[0-9]+", response.headers["x-request-id"])
        async with session.get(
            base_url(gateway) + "/api/exchange/place-order", headers={"x-request-id": "verb-1"}
        ) as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST"
            assert (await response.json())["code"] == grpc.StatusCode.UNIMPLEMENTED.value[0]
            assert response.headers["x-request-id"] == "verb-1"


async def test_a_body_over_the_limit_is_413_with_a_request_id(gateway: Gateway) -> None:
    body = b'{"exchange": "' + b"x" * MAX_BODY_BYTES + b'"}'
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            base_url(gateway) + "/api/exchange/place-order",
            data=body,
            headers={"Content-Type": "application/json", "x-request-id": "big-1"},
        ) as response,
    ):
        assert response.status == 413
        assert (await response.json())["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert response.headers["x-request-id"] == "big-1"


async def read_events(response: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    """The next ``count`` Server-Sent Events' data, parsed."""
    events: list[dict[str, Any]] = []
    data = ""
    while len(events) < count:
        line = (await response.content.readline()).decode()
        assert line, "stream ended early"
        if line.startswith("data: "):
            data = line.removeprefix("data: ").strip()
        elif line == "\n" and data:
            events.append(json.loads(data))
            data = ""
    return events


async def test_sse_quote_stream_delivers_updates_and_ends_when_the_client_leaves(
    gateway: Gateway, world: SimulatedWorld
) -> None:
    url = (
        f"{base_url(gateway)}/v1/quotes:stream"
        "?symbols=BTCUSDT&symbols=eth-usdt&exchanges=binance&exchanges=kucoin"
    )
    session = aiohttp.ClientSession()
    try:
        response = await session.get(url)
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        assert response.headers["x-request-id"]
        for sequence in (1, 2):
            if sequence == 2:
                world.advance()
            events = await read_events(response, 4)
            quotes = [from_json(event, "StreamQuotes").quote for event in events]
            assert {(q.exchange, q.symbol) for q in quotes} == {
                (venue, symbol)
                for venue in ("binance", "kucoin")
                for symbol in ("BTC-USDT", "ETH-USDT")
            }
            assert {q.sequence for q in quotes} == {sequence}
            for quote in quotes:
                assert_matches_world(quote, world)
        assert world.active_watchers == 4
        response.close()  # the client leaves while the stream is quiet
    finally:
        await session.close()
    await until(lambda: world.active_watchers == 0)


async def test_sse_stream_refused_before_the_first_event_gets_an_http_error(
    gateway: Gateway,
) -> None:
    url = f"{base_url(gateway)}/v1/orderBooks/NOPE-COIN:stream?exchange=binance"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 400
        status = await response.json()
    assert status["message"].startswith("symbol: ")


async def test_server_shutdown_ends_an_open_sse_stream_with_a_notice(
    world: SimulatedWorld,
) -> None:
    running = await start_gateway(make_settings(http_address="127.0.0.1:0"), world=world)
    stopped = False
    try:
        async with aiohttp.ClientSession() as session:
            url = f"{base_url(running)}/v1/quotes:stream?symbols=BTC-USDT&exchanges=coinbase"
            async with session.get(url) as response:
                await read_events(response, 1)
                stopping = asyncio.create_task(running.stop(grace=1.0))
                (last,) = await read_events(response, 1)
                assert last["notice"]["kind"] == "STREAM_NOTICE_KIND_SHUTDOWN"
                assert await response.content.read() == b""  # then the stream ends
                await stopping
                stopped = True
    finally:
        if not stopped:
            await running.stop(grace=0.5)


READER = "reader-token-0123456789"
TRADER = "trader-token-0123456789"


@pytest.fixture
async def secured() -> AsyncIterator[Gateway]:
    grants = load_settings(
        {"TITAN_AUTH_TOKENS": f"{TRADER}:read+trade,{READER}:read"}, env_file=None
    ).auth_grants
    gateway = await start_gateway(make_settings(auth_grants=grants, http_address="127.0.0.1:0"))
    try:
        yield gateway
    finally:
        await gateway.stop(grace=0.5)


async def test_bearer_tokens_and_scopes_as_over_grpc(secured: Gateway) -> None:
    status = await run_curl('curl "http://localhost:3000/api/exchange/status"', secured)
    assert status["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    status = await run_curl(
        f'curl -H "Authorization: Bearer {READER}" "http://localhost:3000/api/exchange/status"',
        secured,
    )
    assert status["mode"] == "MODE_SIMULATED"
    order = {"exchange": "mock", "symbol": "BTC-USDT", "side": "SIDE_BUY"}
    async with aiohttp.ClientSession() as session:
        url = base_url(secured) + "/api/exchange/place-order"
        for token, expected in ((READER, 403), (TRADER, 400), ("wrong-token-0123456789", 401)):
            headers = {"Authorization": f"Bearer {token}", "x-request-id": f"auth-{expected}"}
            async with session.post(url, json=order, headers=headers) as response:
                assert response.status == expected, await response.text()
                assert response.headers["x-request-id"] == f"auth-{expected}"
        async with session.get(base_url(secured) + "/openapi.json") as response:
            assert response.status == 200  # the description is open, like reflection


def test_http_beyond_loopback_needs_tokens() -> None:
    with pytest.raises(ConfigError, match="TITAN_HTTP_ADDRESS"):
        check_startup_rules(make_settings(http_address="0.0.0.0:8080"))
    grants = load_settings({"TITAN_AUTH_TOKENS": f"{READER}:read"}, env_file=None).auth_grants
    exposed = make_settings(http_address="0.0.0.0:8080", auth_grants=grants)
    with pytest.raises(ConfigError, match="TITAN_HTTP_ADDRESS: bearer tokens would cross"):
        check_startup_rules(exposed)  # tokens in plaintext: TLS or the proxy opt-out
    check_startup_rules(replace(exposed, allow_plaintext_tokens=True))
    assert load_settings({}, env_file=None).http_address == ""
    settings = load_settings({"TITAN_HTTP_ADDRESS": "127.0.0.1:8080"}, env_file=None)
    assert settings.http_address == "127.0.0.1:8080"
    with pytest.raises(ConfigError, match="TITAN_HTTP_ADDRESS"):
        load_settings({"TITAN_HTTP_ADDRESS": "8080"}, env_file=None)


async def test_http_port_in_use_stops_start_up_with_one_line(gateway: Gateway) -> None:
    assert gateway.http is not None
    taken = f"127.0.0.1:{gateway.http.port}"
    with pytest.raises(ConfigError, match=f"TITAN_HTTP_ADDRESS: cannot bind {taken}"):
        await start_gateway(make_settings(http_address=taken))


async def test_openapi_document_lists_every_route_with_resolvable_schemas(
    gateway: Gateway,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(base_url(gateway) + "/openapi.json") as response,
    ):
        document = await response.json()
    assert document["openapi"].startswith("3.")
    operations = {
        op["operationId"]: (path, verb)
        for path, item in document["paths"].items()
        for verb, op in item.items()
    }
    assert operations["GetMarketData"] == ("/api/exchange/market-data/{symbol}", "get")
    assert operations["PlanRoute"] == ("/api/exchange/smart-routing", "post")
    assert set(operations) == {m.name for m in SERVICE.methods}
    market_data = document["paths"]["/api/exchange/market-data/{symbol}"]["get"]
    assert {(p["name"], p["in"]) for p in market_data["parameters"]} >= {
        ("symbol", "path"),
        ("exchange", "query"),
    }
    schemas = document["components"]["schemas"]
    for ref in _refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    ticker = schemas["titan.v1.Ticker"]["properties"]
    assert ticker["bidSize"] == {"type": "string"}
    assert schemas["titan.v1.Source"]["properties"]["venueTime"]["format"] == "date-time"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


async def test_the_callers_request_id_comes_back(gateway: Gateway) -> None:
    url = base_url(gateway) + "/api/exchange/market-data/BTCUSDT?exchange=mock"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"x-request-id": "trace-http-42"}) as response:
            assert response.status == 200
            assert response.headers["x-request-id"] == "trace-http-42"
        async with session.get(
            url.replace("BTCUSDT", "NOPE"), headers={"x-request-id": "t-2"}
        ) as response:
            assert response.status == 400
            assert response.headers["x-request-id"] == "t-2"


async def curl_exit_code(*args: str) -> tuple[int, bytes]:
    process = await asyncio.create_subprocess_exec(
        "curl", "-sS", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out


async def test_http_uses_the_grpc_tls_set_up_including_client_certificates(
    tmp_path: Path,
) -> None:
    ca, client_ca = make_ca("server ca"), make_ca("client ca")
    server_key, server_cert = issue(ca, "localhost")
    client_key, client_cert = issue(client_ca, "browser")
    settings = make_settings(
        http_address="127.0.0.1:0",
        tls_cert=write(tmp_path, "server.pem", pem(server_cert)),
        tls_key=write(tmp_path, "server.key", pem(server_key)),
        tls_client_ca=write(tmp_path, "clients.pem", pem(client_ca[1])),
    )
    running = await start_gateway(settings)
    try:
        assert running.http is not None
        url = f"https://localhost:{running.http.port}/api/exchange/status"
        cacert = write(tmp_path, "ca.pem", pem(ca[1]))
        cert = write(tmp_path, "client.pem", pem(client_cert))
        key = write(tmp_path, "client.key", pem(client_key))
        code, out = await curl_exit_code("--cacert", cacert, "--cert", cert, "--key", key, url)
        assert code == 0 and json.loads(out)["mode"] == "MODE_SIMULATED"
        code, _ = await curl_exit_code("--cacert", cacert, url)  # no client certificate
        assert code != 0
        code, _ = await curl_exit_code(url.replace("https", "http"))  # plaintext
        assert code != 0
    finally:
        await running.stop(grace=0.5)


async def test_grpc_timeout_ends_an_sse_stream_with_a_deadline_event(
    gateway: Gateway, world: SimulatedWorld
) -> None:
    url = f"{base_url(gateway)}/v1/quotes:stream?symbols=SOL-USDT&exchanges=coinbase"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"grpc-timeout": "1S"}) as response:
            assert response.status == 200
            (first,) = await read_events(response, 1)
            assert first["quote"]["symbol"] == "SOL-USDT"
            lines = (await response.content.read()).decode().splitlines()
        assert lines[0] == "event: error"
        assert json.loads(lines[1].removeprefix("data: "))["code"] == 4  # DEADLINE_EXCEEDED
        await until(lambda: world.active_watchers == 0)
        headers = {"grpc-timeout": "soon"}
        async with session.get(url, headers=headers) as response:
            assert response.status == 400
            assert (await response.json())["message"].startswith("grpc-timeout: ")
