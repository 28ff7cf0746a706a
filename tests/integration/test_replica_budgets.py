"""Three server processes sharing one account and one venue budget per venue: reads and
orders flood all three, and the venues never answer 429 nor count more than their limits.

Binance reports its usage in headers (processes correct from them after the fact);
Coinbase reports nothing, so only a budget shared before sending keeps three processes
within its token bucket. On the embedded default (``serve --workers 3``: each process
spends a third of every budget) and with TITAN_REDIS_URL (three ``serve`` processes, one
budget in Redis).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.fakes.binance import FakeBinance
from tests.fakes.coinbase import FakeCoinbase
from tests.integration.test_cli import free_port
from tests.integration.test_replicas import Servers, server_env, spawn, wait_for_log
from tests.replicas import wait_for_trading
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc

WEIGHT_LIMIT = 600  # per minute, as the fake's exchangeInfo publishes
ORDER_LIMIT = 50  # per 10 s
CLIENTS = 24
READS_PER_CLIENT = 40
ORDERS = 24
MARKETS = (("binance", "BTC-USDT"), ("binance", "ETH-BTC"), ("coinbase", "BTC-USD"))


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    venue = FakeBinance(weight_limit=WEIGHT_LIMIT, order_limit=ORDER_LIMIT)
    await venue.start()
    try:
        yield venue
    finally:
        await venue.stop()


@pytest.fixture
async def coinbase() -> AsyncIterator[FakeCoinbase]:
    venue = FakeCoinbase()  # public: 10 requests/s, bursts of 15, no usage headers
    await venue.start()
    try:
        yield venue
    finally:
        await venue.stop()


def budget_env(fake: FakeBinance, coinbase: FakeCoinbase, **extra: str) -> dict[str, str]:
    env = server_env(fake, COINBASE_BASE_URL=coinbase.url, **extra)
    # The venue's own published limits, not the replica tests' "never throttle" ones.
    env.pop("BINANCE_REQUEST_WEIGHT_PER_MINUTE")
    env.pop("BINANCE_ORDERS_PER_10S")
    env["TITAN_READ_MAX_AGE_MS"] = "0"  # every read wants the venue: the lanes are tested
    env["TITAN_READ_PROMOTE_READS"] = "0"  # and no live feed answers for it
    return env


async def embedded(fake: FakeBinance, coinbase: FakeCoinbase, tmp_path: Path) -> Servers:
    port, log = free_port(), tmp_path / "workers.log"
    env = budget_env(fake, coinbase, TITAN_JOURNAL_PATH=str(tmp_path / "journal.sqlite3"))
    supervisor = spawn(port, env, log, workers=3)
    await wait_for_log(log, ") is serving", 3, supervisor)  # the supervisor knows all three
    return Servers([supervisor], [f"127.0.0.1:{port}"], [log])


async def distributed(
    fake: FakeBinance, coinbase: FakeCoinbase, tmp_path: Path, journal_url: str, redis_url: str
) -> Servers:
    env = budget_env(fake, coinbase, TITAN_JOURNAL_URL=journal_url, TITAN_REDIS_URL=redis_url)
    ports = [free_port() for _ in range(3)]
    logs = [tmp_path / f"server-{n}.log" for n in range(3)]
    processes = [spawn(port, env, log) for port, log in zip(ports, logs, strict=True)]
    for process, log in zip(processes, logs, strict=True):
        await wait_for_log(log, "serving titan.v1.ExchangeService", 1, process)
    return Servers(processes, [f"127.0.0.1:{port}" for port in ports], logs)


async def patiently(call: Any, request: Any) -> None:
    """A first read, retried as a client would while the read budget refills."""
    for _ in range(100):
        try:
            await call(request)
            return
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
            await asyncio.sleep(0.2)  # the client's back-off, not a timing
    raise AssertionError("the read budget never refilled")


async def flood(servers: Servers) -> tuple[int, Counter[str], list[str], list[str]]:
    """Reads from every client on every process, orders in the middle of them."""
    channels = [
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
        for target in servers.targets
        for _ in range(9 // len(servers.targets))
    ]
    stubs = [pb_grpc.ExchangeServiceStub(channel) for channel in channels]
    refused: list[str] = []
    answered = 0
    stale: Counter[str] = Counter()  # answers from held data, by venue
    try:
        for channel in channels:
            await wait_for_trading(channel)
        for stub, (venue, symbol) in itertools.product(stubs, MARKETS):  # something held
            await patiently(
                stub.GetMarketData, pb.GetMarketDataRequest(symbol=symbol, exchange=venue)
            )
            await patiently(
                stub.GetOrderBook, pb.GetOrderBookRequest(symbol=symbol, exchange=venue)
            )

        async def reader(index: int) -> None:
            nonlocal answered
            stub, (venue, symbol) = stubs[index % len(stubs)], MARKETS[index % len(MARKETS)]
            for n in range(READS_PER_CLIENT):
                try:
                    if n % 3:
                        ticker = await stub.GetMarketData(
                            pb.GetMarketDataRequest(symbol=symbol, exchange=venue)
                        )
                        note = ticker.ticker.source.note
                    else:
                        book = await stub.GetOrderBook(
                            pb.GetOrderBookRequest(symbol=symbol, exchange=venue)
                        )
                        note = book.book.source.note
                    answered += 1
                    stale[venue] += note.startswith("stale")
                except grpc.aio.AioRpcError as error:
                    refused.append(f"read {error.code().name}: {error.details()}")

        async def trader(index: int) -> pb.Order:
            stub = stubs[index % len(stubs)]
            placed = await stub.PlaceOrder(
                pb.PlaceOrderRequest(
                    exchange="binance",
                    symbol="BTC-USDT",
                    side=pb.SIDE_BUY,
                    type=pb.ORDER_TYPE_LIMIT,
                    quantity="0.001",
                    price="42000",
                    client_order_id=f"budget-{index:03d}",
                ),
                timeout=30,
            )
            cancelled = await stubs[(index + 1) % len(stubs)].CancelOrder(
                pb.CancelOrderRequest(
                    exchange="binance", symbol="BTC-USDT", order_id=placed.order.order_id
                ),
                timeout=30,
            )
            return cancelled.order

        readers = [asyncio.create_task(reader(i)) for i in range(CLIENTS)]
        orders = await asyncio.gather(*(trader(i) for i in range(ORDERS)))
        await asyncio.gather(*readers)
    finally:
        for channel in channels:
            await channel.close()
    statuses = sorted({pb.OrderStatus.Name(order.status) for order in orders})
    return answered, stale, refused, statuses


async def check(servers: Servers, fake: FakeBinance, coinbase: FakeCoinbase) -> None:
    try:
        answered, stale, refused, statuses = await flood(servers)
        assert refused == []  # held data answered every read once its lane was spent
        assert answered == CLIENTS * READS_PER_CLIENT
        assert statuses == ["ORDER_STATUS_CANCELED"]  # every order placed and cancelled
        assert len(fake.orders) == ORDERS
        assert fake.rate_limited == 0  # the venues never had to say 429
        assert coinbase.rate_limited == 0
        assert fake.max_weight_seen <= WEIGHT_LIMIT
        # The reads did press on both budgets: on each venue read lanes ran out and held
        # data answered, marked. (How many requests reached the venues depends on how
        # fast the flood ran and how the kernel spread the connections over the
        # processes; that reads outran the budgets does not.)
        assert stale["binance"] > 0 and stale["coinbase"] > 0, stale
        assert any("/products/" in key for key in coinbase.requests)
    except BaseException:
        print(servers.log_text())
        raise
    finally:
        servers.stop()


async def test_three_workers_split_one_venue_budget(
    fake: FakeBinance, coinbase: FakeCoinbase, tmp_path: Path
) -> None:
    await check(await embedded(fake, coinbase, tmp_path), fake, coinbase)


async def test_three_hosts_share_one_venue_budget_in_redis(
    fake: FakeBinance,
    coinbase: FakeCoinbase,
    tmp_path: Path,
    journal_url: str,
    clean_redis_url: str,
) -> None:
    servers = await distributed(fake, coinbase, tmp_path, journal_url, clean_redis_url)
    await check(servers, fake, coinbase)
