"""Shared fixtures: a real in-process grpc.aio server on an ephemeral loopback port."""

from __future__ import annotations

import importlib.util
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from tests.engines import create_database, running_postgres, running_redis
from titan_grpc.config import Settings
from titan_grpc.exchanges.simulated import SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.server import Gateway, start_gateway

TEST_SEED = 7

# No network beyond loopback, in this process and in every process a test starts.
_LOOPBACK_ONLY = str(Path(__file__).parent / "loopback_only")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (_LOOPBACK_ONLY, os.environ.get("PYTHONPATH", "")) if p
)
if "titan_loopback_guard" not in sys.modules:  # subprocesses import it as sitecustomize
    _spec = importlib.util.spec_from_file_location(
        "titan_loopback_guard", Path(_LOOPBACK_ONLY) / "sitecustomize.py"
    )
    assert _spec is not None and _spec.loader is not None
    _guard = importlib.util.module_from_spec(_spec)
    sys.modules["titan_loopback_guard"] = _guard
    _spec.loader.exec_module(_guard)


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: loopback port 0, no background ticking (tests drive time)."""
    base = Settings(
        grpc_address="127.0.0.1:0",
        sim_seed=TEST_SEED,
        sim_tick_ms=0,
        journal_path=":memory:",
        health_interval_seconds=0,  # tests drive health checks themselves
        read_promote_reads=0,  # no live feeds opened behind a test's back (tests opt in)
        read_max_age_ms=0,  # every read asks the venue unless a test opts into caching
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


@pytest.fixture
def world() -> SimulatedWorld:
    return SimulatedWorld(TEST_SEED)


@pytest.fixture
async def gateway(world: SimulatedWorld) -> AsyncIterator[Gateway]:
    running = await start_gateway(make_settings(), world=world)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


@pytest.fixture
async def channel(gateway: Gateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gateway.port}") as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.ExchangeServiceStub:
    return pb_grpc.ExchangeServiceStub(channel)


# ---- real engines (tests/engines.py): started once per session, only when asked for ----


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server on loopback (its ``postgres`` database)."""
    with running_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis (or Valkey) server on loopback."""
    with running_redis() as url:
        yield url


@pytest.fixture
def journal_url(postgres_url: str) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return create_database(postgres_url, f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture
def clean_redis_url(redis_url: str) -> str:
    """The session's Redis, emptied for one test."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    return redis_url
