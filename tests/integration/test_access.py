"""Bearer tokens with scopes, TLS and mutual TLS, on real servers over loopback."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.conftest import make_settings
from tests.helpers import expect_error
from titan_grpc.config import load_settings
from titan_grpc.errors import ConfigError
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.logs import RequestIdFilter
from titan_grpc.server import Gateway, start_gateway

READER = "reader-token-0123456789"
TRADER = "trader-token-0123456789"
TOKENS = f"{TRADER}:read+trade,{READER}:read"


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def secured() -> AsyncIterator[Gateway]:
    grants = load_settings({"TITAN_AUTH_TOKENS": TOKENS}, env_file=None).auth_grants
    gateway = await start_gateway(make_settings(auth_grants=grants))
    try:
        yield gateway
    finally:
        await gateway.stop(grace=0.5)


ORDER = pb.PlaceOrderRequest(
    exchange="binance",
    symbol="BTC-USDT",
    side=pb.SIDE_BUY,
    type=pb.ORDER_TYPE_LIMIT,
    quantity="0.001",
    price="30000",
)


async def test_tokens_and_scopes(secured: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        stub = pb_grpc.ExchangeServiceStub(channel)
        status = pb.GetStatusRequest()
        await expect_error(stub.GetStatus(status), grpc.StatusCode.UNAUTHENTICATED)
        await expect_error(
            stub.GetStatus(status, metadata=bearer("not-a-token-at-all")),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        await expect_error(
            stub.GetStatus(status, metadata=(("authorization", f"Basic {READER}"),)),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        assert (await stub.GetStatus(status, metadata=bearer(READER))).venues
        denied = await expect_error(
            stub.PlaceOrder(ORDER, metadata=bearer(READER)), grpc.StatusCode.PERMISSION_DENIED
        )
        assert "trade" in (denied.details() or "")
        placed = await stub.PlaceOrder(ORDER, metadata=bearer(TRADER))
        assert placed.order.status == pb.ORDER_STATUS_NEW
        cancel = pb.CancelOrderRequest(exchange="binance", order_id=placed.order.order_id)
        await expect_error(
            stub.CancelOrder(cancel, metadata=bearer(READER)), grpc.StatusCode.PERMISSION_DENIED
        )
        await stub.CancelOrder(cancel, metadata=bearer(TRADER))
        kill = pb.CancelAllOrdersRequest(exchanges=["binance"])
        await expect_error(
            stub.CancelAllOrders(kill, metadata=bearer(READER)), grpc.StatusCode.PERMISSION_DENIED
        )
        assert (await stub.CancelAllOrders(kill, metadata=bearer(TRADER))).results
        listed = pb.ListOpenOrdersRequest(exchanges=["binance"])
        await stub.ListOpenOrders(listed, metadata=bearer(READER))  # a read
        stream = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["BTC-USDT"]))
        await expect_error(stream.read(), grpc.StatusCode.UNAUTHENTICATED)
        stream = stub.StreamQuotes(
            pb.StreamQuotesRequest(symbols=["BTC-USDT"]), metadata=bearer(READER)
        )
        assert (await stream.read()).quote.symbol == "BTC-USDT"
        stream.cancel()
        # The account streams need the read scope.
        value = pb.StreamPortfolioValueRequest(exchanges=["kucoin"])
        await expect_error(stub.StreamPortfolioValue(value).read(), grpc.StatusCode.UNAUTHENTICATED)
        await expect_error(
            stub.StreamOrderUpdates(pb.StreamOrderUpdatesRequest()).read(),
            grpc.StatusCode.UNAUTHENTICATED,
        )
        portfolio = stub.StreamPortfolioValue(value, metadata=bearer(READER))
        assert (await portfolio.read()).value.quote_asset == "USDT"
        portfolio.cancel()


async def test_refusals_carry_a_request_id(
    secured: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        stub = pb_grpc.ExchangeServiceStub(channel)
        with caplog.at_level(logging.INFO, logger="titan_grpc.rpc"):
            caplog.handler.addFilter(RequestIdFilter())
            denied = await expect_error(
                stub.PlaceOrder(ORDER, metadata=(*bearer(READER), ("x-request-id", "deny-1"))),
                grpc.StatusCode.PERMISSION_DENIED,
            )
        assert dict(denied.trailing_metadata() or ())["x-request-id"] == "deny-1"
        refused = [r for r in caplog.records if "access control" in r.getMessage()]
        assert [getattr(r, "request_id", None) for r in refused] == ["deny-1"]
        stream = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["BTC-USDT"]))
        missing = await expect_error(stream.read(), grpc.StatusCode.UNAUTHENTICATED)
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9]+", dict(missing.trailing_metadata() or ())["x-request-id"]
        )


async def test_health_and_reflection_stay_open(secured: Gateway) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        call = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        assert (await call.read()).list_services_response.service
        call.cancel()


async def test_tokens_allow_binding_beyond_loopback() -> None:
    grants = load_settings({"TITAN_AUTH_TOKENS": TOKENS}, env_file=None).auth_grants
    # Plaintext beyond loopback needs the proxy opt-out (or TLS: tests/integration/test_exposure)
    exposed = make_settings(grpc_address="0.0.0.0:0", auth_grants=grants)
    gateway = await start_gateway(replace(exposed, allow_plaintext_tokens=True))
    await gateway.stop(grace=0.1)
    with pytest.raises(ConfigError):
        await start_gateway(make_settings(grpc_address="0.0.0.0:0"))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("short:read", "16-256 characters"),
        (f"{READER}:admin", "scopes"),
        (READER, "TOKEN:SCOPES"),
        (f"{READER}:read,{READER}:trade", "twice"),
    ],
)
def test_token_configuration_errors_never_echo_tokens(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TITAN_AUTH_TOKENS": value}, env_file=None)
    (problem,) = caught.value.problems
    assert problem.startswith("TITAN_AUTH_TOKENS: entry") and fragment in problem
    assert READER not in problem and "short" not in problem


# ---- TLS ---------------------------------------------------------------------------


def make_ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], name: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca[1].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca[0], hashes.SHA256())
    )
    return key, cert


def pem(item: ec.EllipticCurvePrivateKey | x509.Certificate) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


async def call_status(port: int, credentials: grpc.ChannelCredentials) -> pb.GetStatusResponse:
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        return await pb_grpc.ExchangeServiceStub(channel).GetStatus(
            pb.GetStatusRequest(), timeout=5
        )


async def test_tls_with_the_right_ca_and_not_with_a_wrong_one(tmp_path: Path) -> None:
    ca, other_ca = make_ca("titan test ca"), make_ca("someone else")
    server_key, server_cert = issue(ca, "localhost")
    settings = make_settings(
        tls_cert=write(tmp_path, "server.pem", pem(server_cert)),
        tls_key=write(tmp_path, "server.key", pem(server_key)),
    )
    gateway = await start_gateway(settings)
    try:
        good = grpc.ssl_channel_credentials(root_certificates=pem(ca[1]))
        assert (await call_status(gateway.port, good)).venues
        wrong = grpc.ssl_channel_credentials(root_certificates=pem(other_ca[1]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call_status(gateway.port, wrong)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await gateway.stop(grace=0.5)


async def test_mutual_tls_needs_a_client_certificate_from_the_client_ca(tmp_path: Path) -> None:
    ca, client_ca, rogue_ca = make_ca("server ca"), make_ca("client ca"), make_ca("rogue")
    server_key, server_cert = issue(ca, "localhost")
    client_key, client_cert = issue(client_ca, "trading-bot")
    rogue_key, rogue_cert = issue(rogue_ca, "intruder")
    settings = make_settings(
        tls_cert=write(tmp_path, "server.pem", pem(server_cert)),
        tls_key=write(tmp_path, "server.key", pem(server_key)),
        tls_client_ca=write(tmp_path, "clients.pem", pem(client_ca[1])),
    )
    gateway = await start_gateway(settings)
    try:
        with_cert = grpc.ssl_channel_credentials(pem(ca[1]), pem(client_key), pem(client_cert))
        assert (await call_status(gateway.port, with_cert)).venues
        for credentials in (
            grpc.ssl_channel_credentials(pem(ca[1])),
            grpc.ssl_channel_credentials(pem(ca[1]), pem(rogue_key), pem(rogue_cert)),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call_status(gateway.port, credentials)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await gateway.stop(grace=0.5)
