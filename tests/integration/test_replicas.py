"""Three server processes sharing one Binance account: still one venue order per id.

Retrying clients spread every attempt over the processes at random, two callers per
client order id, the venue slow and faulty, and one process SIGKILLed mid-burst. Run on
the embedded default (``serve --workers 3``: SQLite journal and claims in one file) and
on PostgreSQL + Redis (three separate ``serve`` processes, as on three hosts).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from tests.conftest import make_settings
from tests.fakes.binance import API_KEY, API_SECRET, FakeBinance, Fault
from tests.integration.test_binance import adapter
from tests.integration.test_cli import free_port
from tests.integration.test_order_safety import market
from tests.replicas import spawn, wait_for_log, wait_for_trading, worker_pids
from titan_grpc.config import Secret
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import start_gateway

ORDERS = 500
SLOW_ORDERS = 2000
CALLERS_PER_ID = 2
CLIENTS = 24
RETRYABLE = (
    grpc.StatusCode.UNAVAILABLE,  # AmbiguousOutcome / a dead process / busy store
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    venue = FakeBinance(weight_limit=10_000_000, order_limit=10_000_000)
    rng = random.Random(15)
    mix: list[Fault | None] = [
        Fault("latency", 0.05),
        Fault("latency", 0.2),  # callers of the same id in other processes pile up
        Fault("latency", 0.01),
        None,
        # Answers lost after the venue accepted (a 5xx before it is in test_order_safety:
        # the adapter's reconciliation alone takes seconds there).
        Fault("5xx_after_accept"),
        Fault("reset_after_accept"),
    ]
    venue.order_fault_plan = lambda: rng.choice(mix)
    await venue.start()
    try:
        yield venue
    finally:
        await venue.stop()


def server_env(fake: FakeBinance, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TITAN_", "BINANCE_", "COINBASE_", "KUCOIN_", "USE_"))
    }
    env.update(
        USE_REAL_EXCHANGES="true",
        BINANCE_BASE_URL=fake.url,
        BINANCE_API_KEY=API_KEY,
        BINANCE_API_SECRET=API_SECRET,
        # The fake's own limits are what is tested elsewhere; here nothing may throttle.
        BINANCE_REQUEST_WEIGHT_PER_MINUTE="1000000",
        BINANCE_ORDERS_PER_10S="100000",
        COINBASE_BASE_URL="http://127.0.0.1:9",  # no venue beyond loopback in tests
        KUCOIN_BASE_URL="http://127.0.0.1:9",
        TITAN_RECONCILE_SETTLE_SECONDS="2",  # well above the fake's slowest answer
        TITAN_CLAIM_LEASE_SECONDS="1",  # the killed process's claims run out quickly
        TITAN_SIM_TICK_MS="0",
        TITAN_HEALTH_INTERVAL_SECONDS="0",
    )
    env.update(extra)
    return env


@dataclass
class Servers:
    processes: list[subprocess.Popen[bytes]]
    targets: list[str]  # addresses clients spread their attempts over
    logs: list[Path]
    kill: Callable[[], None] = lambda: None
    killed: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-4000:] for path in self.logs)


async def embedded_servers(fake: FakeBinance, tmp_path: Path) -> Servers:
    port = free_port()
    log = tmp_path / "workers.log"
    env = server_env(fake, TITAN_JOURNAL_PATH=str(tmp_path / "journal.sqlite3"))
    supervisor = spawn(port, env, log, workers=3)
    await wait_for_log(log, ") is serving", 3, supervisor)  # the supervisor knows all three
    servers = Servers([supervisor], [f"127.0.0.1:{port}"], [log])
    workers = worker_pids(supervisor.pid)
    assert len(workers) == 3, workers

    def kill() -> None:
        os.kill(workers[0], signal.SIGKILL)
        servers.killed.append(str(workers[0]))

    servers.kill = kill
    return servers


async def distributed_servers(
    fake: FakeBinance, tmp_path: Path, journal_url: str, redis_url: str
) -> Servers:
    env = server_env(fake, TITAN_JOURNAL_URL=journal_url, TITAN_REDIS_URL=redis_url)
    ports = [free_port() for _ in range(3)]
    logs = [tmp_path / f"server-{n}.log" for n in range(3)]
    processes = [spawn(port, env, log) for port, log in zip(ports, logs, strict=True)]
    for process, log in zip(processes, logs, strict=True):
        await wait_for_log(log, "serving titan.v1.ExchangeService", 1, process)
    servers = Servers(processes, [f"127.0.0.1:{port}" for port in ports], logs)

    def kill() -> None:
        processes[0].send_signal(signal.SIGKILL)
        servers.killed.append(servers.targets[0])

    servers.kill = kill
    return servers


async def burst(
    servers: Servers, fake: FakeBinance, ids: list[str], kill_after: int
) -> dict[str, set[str]]:
    """Every id placed by CALLERS_PER_ID callers, each attempt on a random process."""
    rng = random.Random(len(ids))
    # Several connections per address: with --workers the kernel spreads them (SO_REUSEPORT).
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for target in servers.targets
        for _ in range(12 // len(servers.targets))
    ]
    stubs = [pb_grpc.ExchangeServiceStub(channel) for channel in channels]
    jobs = [cid for cid in ids for _ in range(CALLERS_PER_ID)]
    rng.shuffle(jobs)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for cid in jobs:
        queue.put_nowait(cid)
    answers: dict[str, set[str]] = defaultdict(set)

    async def client() -> None:
        while not queue.empty():
            cid = queue.get_nowait()
            backoff = 0.02
            for _ in range(200):
                try:
                    call = rng.choice(stubs).PlaceOrder(market(cid), timeout=15)
                    answers[cid].add((await call).order.order_id)
                    break
                except grpc.aio.AioRpcError as error:
                    assert error.code() in RETRYABLE, (error.code(), error.details())
                    await asyncio.sleep(backoff)  # a client's back-off, not a timing
                    backoff = min(backoff * 2, 0.5)
            else:
                raise AssertionError(f"{cid} never placed")

    async def killer() -> None:
        await fake.wait_for_orders(kill_after)  # mid-burst
        servers.kill()

    kill_task = asyncio.create_task(killer())
    try:
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        assert kill_task.done() and servers.killed, "the kill never happened"
    finally:
        kill_task.cancel()
        for channel in channels:
            await channel.close()
    return answers


async def check_against_venue(
    servers: Servers, fake: FakeBinance, ids: list[str], answers: dict[str, set[str]]
) -> None:
    per_id = fake.orders_per_client_id()
    assert set(per_id) == set(ids)  # none lost
    assert set(per_id.values()) == {1}  # exactly one venue order per id
    venue = {order["clientOrderId"]: str(order_id) for order_id, order in fake.orders.items()}
    assert {cid: answers[cid] for cid in ids} == {cid: {venue[cid]} for cid in ids}
    # ListOrders from every live process agrees with the venue.
    live = [t for t in servers.targets if t not in servers.killed]
    for target in live * (3 if len(live) == 1 else 1):  # one address: several connections
        async with grpc.aio.insecure_channel(
            target, options=[("grpc.use_local_subchannel_pool", 1)]
        ) as channel:
            await wait_for_trading(channel)
            listed = await pb_grpc.ExchangeServiceStub(channel).ListOrders(
                pb.ListOrdersRequest(exchange="binance", limit=1000)
            )
        accepted = {
            o.client_order_id: o.order.order_id
            for o in listed.orders
            if o.state == pb.JOURNAL_STATE_ACCEPTED
        }
        assert len(accepted) == len(listed.orders) == min(len(ids), 1000)  # ListOrders' cap
        assert accepted == {cid: venue[cid] for cid in accepted}


async def run(servers: Servers, fake: FakeBinance, orders: int) -> None:
    try:
        ids = [f"rep-{n:05d}" for n in range(orders)]
        answers = await burst(servers, fake, ids, kill_after=orders // 3)
        await check_against_venue(servers, fake, ids, answers)
    except BaseException:
        print(servers.log_text())
        raise
    finally:
        servers.stop()


async def test_three_workers_on_sqlite_one_order_per_id_through_a_sigkill(
    fake: FakeBinance, tmp_path: Path
) -> None:
    await run(await embedded_servers(fake, tmp_path), fake, ORDERS)


async def test_three_hosts_on_postgres_and_redis_one_order_per_id_through_a_sigkill(
    fake: FakeBinance, tmp_path: Path, journal_url: str, clean_redis_url: str
) -> None:
    servers = await distributed_servers(fake, tmp_path, journal_url, clean_redis_url)
    await run(servers, fake, ORDERS)


@pytest.mark.slow
async def test_soak_three_workers_on_sqlite(fake: FakeBinance, tmp_path: Path) -> None:
    await run(await embedded_servers(fake, tmp_path), fake, SLOW_ORDERS)


@pytest.mark.slow
async def test_soak_three_hosts_on_postgres_and_redis(
    fake: FakeBinance, tmp_path: Path, journal_url: str, clean_redis_url: str
) -> None:
    servers = await distributed_servers(fake, tmp_path, journal_url, clean_redis_url)
    await run(servers, fake, SLOW_ORDERS)


# ---- the report's case, in one test process: two gateways, a slow venue ---------------


@pytest.fixture(params=["sqlite", "postgres+redis"])
def shared_stores(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    if request.param == "sqlite":
        return {"journal_path": str(tmp_path / "journal.sqlite3")}
    return {
        "journal_url": Secret(request.getfixturevalue("journal_url")),
        "redis_url": Secret(request.getfixturevalue("clean_redis_url")),
    }


async def test_two_gateways_and_a_venue_slower_than_the_settle_time_place_each_id_once(
    shared_stores: dict[str, object],
) -> None:
    venue = FakeBinance(weight_limit=1_000_000, order_limit=1_000_000)
    venue.order_fault_plan = lambda: Fault("latency", 0.6)  # accepting takes longer than ...
    await venue.start()
    settings = make_settings(
        use_real_exchanges=True,
        reconcile_settle_seconds=0.2,
        **shared_stores,  # ... settling
    )
    gateways = []
    try:
        for _ in range(2):  # two processes' worth: own venue session, own claim owner
            world = SimulatedWorld(7)
            backends: dict[str, ExchangeBackend] = {
                "binance": adapter(venue, total_timeout=10.0),
                "mock": SimulatedExchange("mock", world),
            }
            gateways.append(await start_gateway(settings, world=world, backends=backends))
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{g.port}") for g in gateways]
        stubs = [pb_grpc.ExchangeServiceStub(channel) for channel in channels]
        ids = [f"slow-{n}" for n in range(8)]
        calls = [stubs[n % 2].PlaceOrder(market(cid)) for cid in ids for n in range(6)]
        answers = await asyncio.gather(*calls)
        for channel in channels:
            await channel.close()
    finally:
        for gateway in gateways:
            await gateway.stop(grace=0.5)
        await venue.stop()
    per_id: dict[str, set[str]] = defaultdict(set)
    for answer in answers:
        per_id[answer.order.client_order_id].add(answer.order.order_id)
    assert venue.orders_per_client_id() == dict.fromkeys(ids, 1)  # one venue order per id
    assert all(len(order_ids) == 1 for order_ids in per_id.values())  # the same for all
