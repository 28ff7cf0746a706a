"""Start-up serves at once: reads answer while reconciliation runs in the background."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from tests.conftest import make_settings
from tests.fakes.binance import FakeBinance
from tests.integration.test_binance import adapter
from tests.integration.test_cli import free_port
from tests.integration.test_order_safety import resting
from tests.replicas import trading_status, wait_for_trading
from titan_grpc.config import Secret
from titan_grpc.domain import OrderRequest, OrderType, Side, Symbol, TimeInForce
from titan_grpc.errors import ConfigError
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway, start_gateway
from titan_grpc.stores.sqlite import SqliteJournal
from titan_grpc.trading.journal import JournalState

ORDER_LOOKUP = ("GET", "/api/v3/order")


def request_for(cid: str) -> OrderRequest:
    return OrderRequest(
        Symbol("BTC", "USDT"),
        Side.BUY,
        OrderType.LIMIT,
        Decimal("0.01"),
        Decimal("30000"),
        TimeInForce.GTC,
        cid,
    )


UNSETTLED = 200


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    venue = FakeBinance(weight_limit=1_000_000, order_limit=1_000_000)
    await venue.start()
    try:
        yield venue
    finally:
        venue.holds.clear()
        await venue.stop()


async def gateway_on(fake: FakeBinance, journal: Path) -> Gateway:
    world = SimulatedWorld(7)
    backends: dict[str, ExchangeBackend] = {
        "binance": adapter(fake, total_timeout=30.0),
        "mock": SimulatedExchange("mock", world),
    }
    settings = make_settings(
        use_real_exchanges=True, journal_path=str(journal), reconcile_settle_seconds=30
    )
    return await start_gateway(settings, world=world, backends=backends)


async def test_a_restart_with_200_unsettled_orders_answers_reads_before_reconciling(
    fake: FakeBinance, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    first = await gateway_on(fake, journal)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        stub = pb_grpc.ExchangeServiceStub(channel)
        ids = [f"open-{n:03d}" for n in range(UNSETTLED)]
        placed = {}
        for cid in ids:  # resting orders: open at the venue, so all need reconciling
            placed[cid] = (await stub.PlaceOrder(resting(cid))).order.order_id
    await first.stop(grace=0.5)

    lookups = asyncio.Event()
    fake.holds[ORDER_LOOKUP] = lookups  # reconciliation cannot finish until we say so
    second = await gateway_on(fake, journal)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            # Bound and answering while every lookup is still held at the venue:
            assert await trading_status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            listed = await stub.ListOrders(pb.ListOrdersRequest(limit=1000))
            assert len(listed.orders) == UNSETTLED
            assert (await stub.GetStatus(pb.GetStatusRequest())).version
            assert not second.reconciled.is_set()  # answered before reconciliation finished

            # An id under reconciliation waits for it; a new id goes at once.
            waiting = asyncio.ensure_future(stub.PlaceOrder(resting(ids[0])))
            fresh = await stub.PlaceOrder(resting("fresh-1"))
            assert fresh.order.order_id
            assert not waiting.done()

            lookups.set()
            await wait_for_trading(channel)
            assert (await waiting).order.order_id == placed[ids[0]]
    finally:
        await second.stop(grace=0.5)
    assert second.reconciled.is_set()
    assert set(fake.orders_per_client_id()) == {*ids, "fresh-1"}
    assert set(fake.orders_per_client_id().values()) == {1}


@pytest.mark.parametrize(
    ("variable", "setting", "url"),
    [
        ("TITAN_JOURNAL_URL", "journal_url", "postgresql://titan:{pw}@127.0.0.1:{port}/titan"),
        ("TITAN_REDIS_URL", "redis_url", "redis://:{pw}@127.0.0.1:{port}/0"),
    ],
)
async def test_an_unreachable_store_stops_start_up_naming_the_variable_not_the_url(
    variable: str, setting: str, url: str
) -> None:
    password = "CANARY-PW-4471"
    closed = free_port()  # nothing listens there
    settings = make_settings(**{setting: Secret(url.format(pw=password, port=closed))})
    with pytest.raises(ConfigError) as caught:
        await start_gateway(settings)
    [problem] = caught.value.problems
    assert problem.startswith(f"{variable}: ")
    assert password not in problem


@pytest.fixture(params=["sqlite", "postgres+redis"])
def shared_stores(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    if request.param == "sqlite":
        return {"journal_path": str(tmp_path / "journal.sqlite3")}
    return {
        "journal_url": Secret(request.getfixturevalue("journal_url")),
        "redis_url": Secret(request.getfixturevalue("clean_redis_url")),
    }


async def start_on(fake: FakeBinance, stores: dict[str, object]) -> Gateway:
    world = SimulatedWorld(7)
    backends: dict[str, ExchangeBackend] = {
        "binance": adapter(fake, total_timeout=30.0),
        "mock": SimulatedExchange("mock", world),
    }
    settings = make_settings(use_real_exchanges=True, **stores)
    return await start_gateway(settings, world=world, backends=backends)


async def test_only_one_process_reconciles_a_row(
    fake: FakeBinance, shared_stores: dict[str, object]
) -> None:
    first = await start_on(fake, shared_stores)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        stub = pb_grpc.ExchangeServiceStub(channel)
        for n in range(30):  # resting orders: open at the venue, so all need reconciling
            await stub.PlaceOrder(resting(f"open-{n:02d}"))
    await first.stop(grace=0.5)

    lookups = asyncio.Event()
    fake.holds[ORDER_LOOKUP] = lookups  # both are up before either can finish a row
    before = fake.requests[ORDER_LOOKUP]
    restarted = [await start_on(fake, shared_stores) for _ in range(2)]
    try:
        lookups.set()
        for gateway in restarted:
            await gateway.reconciled.wait()
    finally:
        for gateway in restarted:
            await gateway.stop(grace=0.5)
    assert fake.requests[ORDER_LOOKUP] - before == 30  # one lookup per row, not per process


async def test_the_server_prunes_settled_orders_past_the_retention(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sqlite3")
    long_ago = datetime.now(UTC) - timedelta(days=45)
    old = SqliteJournal(path, clock=lambda: long_ago)
    await old.open()
    for cid in ("refused-long-ago", "limbo-long-ago"):
        await old.record_intent("binance", request_for(cid))
    await old.record_failure("binance", "refused-long-ago", JournalState.REJECTED, "K", "no")
    await old.record_failure("binance", "limbo-long-ago", JournalState.UNSENT, "K", "later")
    await old.close()

    gateway = await start_gateway(make_settings(journal_path=path, journal_retention_days=30))
    try:
        for _ in range(500):  # the first pruning pass follows start-up reconciliation
            kept = {e.client_order_id for e in await gateway.journal.list_entries()}
            if kept == {"limbo-long-ago"}:
                break
            await asyncio.sleep(0.01)
        assert kept == {"limbo-long-ago"}  # a settled rejection went; an unsent intent stays
    finally:
        await gateway.stop(grace=0.5)
