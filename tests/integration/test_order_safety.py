"""No duplicate and no lost orders: idempotency, journal, reconciliation, faults, restarts."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import make_settings
from tests.fakes.binance import API_KEY, API_SECRET, FakeBinance, Fault
from tests.helpers import error_info, expect_error
from tests.integration.test_binance import adapter
from tests.integration.test_cli import ROOT, free_port, wait_until_serving
from tests.replicas import wait_for_trading
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.binance import BinanceExchange
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway, start_gateway

ORDER_POST = ("POST", "/api/v3/order")


def resting(cid: str, exchange: str = "binance", quantity: str = "0.01") -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        exchange=exchange,
        symbol="BTC-USDT",
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_LIMIT,
        quantity=quantity,
        price="30000",
        client_order_id=cid,
    )


def market(cid: str, exchange: str = "binance") -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        exchange=exchange,
        symbol="BTC-USDT",
        side=pb.SIDE_BUY,
        type=pb.ORDER_TYPE_MARKET,
        quantity="0.001",
        client_order_id=cid,
    )


async def test_same_id_in_flight_concurrently_places_one_order(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    answers = await asyncio.gather(*(stub.PlaceOrder(resting("burst-1")) for _ in range(25)))
    assert {a.order.order_id for a in answers} == {answers[0].order.order_id}
    assert len(world.engine("binance").open_orders(None)) == 1


async def test_the_journal_survives_a_restart_and_answers_repeats(tmp_path: Path) -> None:
    world = SimulatedWorld(7)  # the venue outlives the gateway
    settings = make_settings(journal_path=str(tmp_path / "journal.sqlite3"))
    first = await start_gateway(settings, world=world)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as channel:
        placed = await pb_grpc.ExchangeServiceStub(channel).PlaceOrder(resting("keep-1"))
    await first.stop(grace=0.5)

    second = await start_gateway(settings, world=world)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            again = await stub.PlaceOrder(resting("keep-1"))
            assert again.order.order_id == placed.order.order_id
            listed = await stub.ListOrders(pb.ListOrdersRequest(exchange="binance"))
            assert [(o.client_order_id, o.state) for o in listed.orders] == [
                ("keep-1", pb.JOURNAL_STATE_ACCEPTED)
            ]
            assert listed.orders[0].intent.price == "30000"
            assert listed.orders[0].order.status == pb.ORDER_STATUS_NEW
    finally:
        await second.stop(grace=0.5)
    assert len(world.engine("binance").open_orders(None)) == 1


async def test_a_rejection_is_replayed_not_resent(
    stub: pb_grpc.ExchangeServiceStub, world: SimulatedWorld
) -> None:
    too_big = resting("poor-1", exchange="kucoin", quantity="10")
    first = await expect_error(stub.PlaceOrder(too_big), grpc.StatusCode.FAILED_PRECONDITION)
    second = await expect_error(stub.PlaceOrder(too_big), grpc.StatusCode.FAILED_PRECONDITION)
    assert error_info(first).reason == error_info(second).reason == "INSUFFICIENT_FUNDS"
    assert "replayed" in (second.details() or "")
    listed = await stub.ListOrders(
        pb.ListOrdersRequest(states=[pb.JOURNAL_STATE_REJECTED], symbol="btcusdt")
    )
    assert [o.client_order_id for o in listed.orders] == ["poor-1"]
    assert listed.orders[0].error.startswith("InsufficientFunds")
    bad_filter = await expect_error(
        stub.ListOrders(pb.ListOrdersRequest(states=[99])), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (bad_filter.details() or "").startswith("states[0]:")


# ---- against the fake Binance -------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    venue = FakeBinance(weight_limit=1_000_000, order_limit=1_000_000)
    await venue.start()
    try:
        yield venue
    finally:
        await venue.stop()


async def gateway_for(backend: BinanceExchange, settle_seconds: float) -> Gateway:
    world = SimulatedWorld(7)
    backends: dict[str, ExchangeBackend] = {
        "binance": backend,
        "mock": SimulatedExchange("mock", world),
    }
    settings = make_settings(use_real_exchanges=True, reconcile_settle_seconds=settle_seconds)
    return await start_gateway(settings, world=world, backends=backends)


async def test_unknown_outcome_is_never_resent_inside_the_settle_window(fake: FakeBinance) -> None:
    gateway = await gateway_for(adapter(fake), settle_seconds=3600)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            fake.inject(*ORDER_POST, Fault("5xx"))
            for _ in range(3):
                error = await expect_error(
                    stub.PlaceOrder(market("unk-1")), grpc.StatusCode.UNAVAILABLE
                )
                assert error_info(error).reason == "AMBIGUOUS_OUTCOME"
            assert fake.requests[ORDER_POST] == 1
            listed = await stub.ListOrders(pb.ListOrdersRequest())
            assert listed.orders[0].state == pb.JOURNAL_STATE_AMBIGUOUS
    finally:
        await gateway.stop(grace=0.5)


async def test_unknown_outcome_is_sent_again_only_after_the_venue_denies_it(
    fake: FakeBinance,
) -> None:
    gateway = await gateway_for(adapter(fake), settle_seconds=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            fake.inject(*ORDER_POST, Fault("5xx"))
            await expect_error(stub.PlaceOrder(market("unk-2")), grpc.StatusCode.UNAVAILABLE)
            order = (await stub.PlaceOrder(market("unk-2"))).order
            assert order.status == pb.ORDER_STATUS_FILLED
            assert fake.requests[ORDER_POST] == 2
            assert fake.orders_per_client_id()["unk-2"] == 1
            listed = (await stub.ListOrders(pb.ListOrdersRequest())).orders[0]
            assert (listed.state, listed.attempts) == (pb.JOURNAL_STATE_ACCEPTED, 2)
    finally:
        await gateway.stop(grace=0.5)


async def test_a_duplicate_answer_the_venue_cannot_show_is_reconciled_not_rejected(
    fake: FakeBinance,
) -> None:
    gateway = await gateway_for(adapter(fake), settle_seconds=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            fake.inject(*ORDER_POST, Fault("duplicate"))  # "Duplicate order sent.", no order
            error = await expect_error(
                stub.PlaceOrder(market("dup-1")), grpc.StatusCode.UNAVAILABLE
            )
            assert error_info(error).reason == "AMBIGUOUS_OUTCOME"
            listed = (await stub.ListOrders(pb.ListOrdersRequest())).orders[0]
            assert listed.state == pb.JOURNAL_STATE_AMBIGUOUS  # never a final REJECTED
            # The retry asks the venue again; still unknown past the settle time: sent again.
            order = (await stub.PlaceOrder(market("dup-1"))).order
            assert order.status == pb.ORDER_STATUS_FILLED
            assert fake.orders_per_client_id()["dup-1"] == 1
    finally:
        await gateway.stop(grace=0.5)


def fault_mix(seed: int) -> tuple[random.Random, list[Fault | None]]:
    return random.Random(seed), [
        None,
        None,
        None,
        Fault("latency", 0.02),
        Fault("5xx"),
        Fault("5xx_after_accept"),
        Fault("reset_after_accept"),
        Fault("timeout_after_accept", 1.5),
    ]


async def burst(
    stub: pb_grpc.ExchangeServiceStub, ids: list[str], clients: int, exchange: str = "binance"
) -> dict[str, str]:
    """Clients place their ids, retrying the same id on UNAVAILABLE until it lands."""
    placed: dict[str, str] = {}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for cid in ids:
        queue.put_nowait(cid)

    async def client() -> None:
        while not queue.empty():
            cid = queue.get_nowait()
            for _ in range(200):
                try:
                    placed[cid] = (
                        await stub.PlaceOrder(market(cid, exchange), timeout=10)
                    ).order.order_id
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() in (
                        grpc.StatusCode.UNAVAILABLE,
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                    ), (error.code(), error.details())
                    await asyncio.sleep(0.02)

    await asyncio.gather(*(client() for _ in range(clients)))
    return placed


async def run_fault_burst(fake: FakeBinance, orders: int) -> None:
    rng, faults = fault_mix(seed=orders)
    fake.order_fault_plan = lambda: rng.choice(faults)
    gateway = await gateway_for(adapter(fake), settle_seconds=0.2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            ids = [f"burst-{n:05d}" for n in range(orders)]
            placed = await burst(stub, ids, clients=20)
            journal = await gateway.journal.list_entries(limit=orders + 10)
    finally:
        await gateway.stop(grace=0.5)
    per_id = fake.orders_per_client_id()
    assert sorted(placed) == ids  # none lost
    assert set(per_id) == set(ids) and set(per_id.values()) == {1}  # no duplicate
    assert sorted(e.client_order_id for e in journal) == ids
    assert {e.order.order_id for e in journal if e.order} == {str(o) for o in fake.orders}


async def test_a_thousand_retrying_clients_under_faults_leave_one_order_per_id(
    fake: FakeBinance,
) -> None:
    await run_fault_burst(fake, orders=1000)


def spawn_server(port: int, fake_url: str, journal: Path) -> subprocess.Popen[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TITAN_", "BINANCE_", "COINBASE_", "KUCOIN_", "USE_"))
    }
    env.update(
        USE_REAL_EXCHANGES="true",
        BINANCE_BASE_URL=fake_url,
        BINANCE_API_KEY=API_KEY,
        BINANCE_API_SECRET=API_SECRET,
        COINBASE_BASE_URL="http://127.0.0.1:9",  # no venue beyond loopback in tests
        KUCOIN_BASE_URL="http://127.0.0.1:9",
        TITAN_JOURNAL_PATH=str(journal),
        TITAN_RECONCILE_SETTLE_SECONDS="0",
        TITAN_CLAIM_LEASE_SECONDS="1",  # the killed process's claims run out quickly
        TITAN_SIM_TICK_MS="0",
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "titan_grpc",
            "serve",
            "--address",
            f"127.0.0.1:{port}",
            "--env-file",
            "",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_sigkill_mid_burst_then_restart_reconciles_to_the_venue(
    fake: FakeBinance, tmp_path: Path
) -> None:
    journal_path = tmp_path / "journal.sqlite3"
    port = free_port()
    rng, faults = fault_mix(seed=3)
    fake.order_fault_plan = lambda: rng.choice(faults)
    server = spawn_server(port, fake.url, journal_path)
    try:
        await asyncio.to_thread(wait_until_serving, port, server)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            ids = [f"kill-{n:04d}" for n in range(120)]
            task = asyncio.create_task(burst(stub, ids, clients=10))
            await asyncio.wait_for(fake.wait_for_orders(40), 60)  # mid-burst
            server.send_signal(signal.SIGKILL)
            await asyncio.to_thread(server.wait, 10)
            task.cancel()  # the clients lost their server mid-burst
            await asyncio.gather(task, return_exceptions=True)
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate()
    fake.order_fault_plan = None
    restarted = spawn_server(port, fake.url, journal_path)
    try:
        await asyncio.to_thread(wait_until_serving, port, restarted)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.ExchangeServiceStub(channel)
            await wait_for_trading(channel)  # start-up reconciliation runs in the background
            listed = (await stub.ListOrders(pb.ListOrdersRequest(limit=1000))).orders
            # Start-up reconciliation left nothing in limbo ...
            assert {o.state for o in listed} <= {pb.JOURNAL_STATE_ACCEPTED, pb.JOURNAL_STATE_UNSENT}
            accepted = {o.client_order_id for o in listed if o.state == pb.JOURNAL_STATE_ACCEPTED}
            # ... and the journal agrees with the venue exactly.
            assert accepted == set(fake.orders_per_client_id())
            assert set(fake.orders_per_client_id().values()) == {1}
            # Clients finish their ids after the restart: still one order per id.
            await burst(stub, ids, clients=10)
        assert set(fake.orders_per_client_id()) == set(ids)
        assert set(fake.orders_per_client_id().values()) == {1}
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.communicate(timeout=30)
