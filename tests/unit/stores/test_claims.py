"""Claims on every engine (SQLite file, PostgreSQL, Redis): one live owner per key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from titan_grpc.stores import ClaimBusy, Claims, ClaimStore
from titan_grpc.stores.postgres import PostgresClaims, PostgresDatabase
from titan_grpc.stores.redis_claims import RedisClaims
from titan_grpc.stores.redis_client import open_redis
from titan_grpc.stores.sqlite import SqliteClaims, SqliteDatabase

KEY = ("binance", "c-1")


@pytest.fixture(params=["sqlite", "postgres", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ClaimStore]:
    opened: ClaimStore
    if request.param == "sqlite":
        sqlite_claims = SqliteClaims(SqliteDatabase(str(tmp_path / "journal.sqlite3")))
        await sqlite_claims.open()
        opened = sqlite_claims
    elif request.param == "postgres":
        postgres_claims = PostgresClaims(PostgresDatabase(request.getfixturevalue("journal_url")))
        await postgres_claims.open()
        opened = postgres_claims
    else:
        opened = RedisClaims(await open_redis(request.getfixturevalue("clean_redis_url")))
    try:
        yield opened
    finally:
        await opened.close()


async def until_acquired(store: ClaimStore, owner: str) -> None:
    """Poll until a (very short) lease has run out on the engine's clock."""
    for _ in range(1000):
        if await store.acquire(KEY, owner, 30):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the expired claim was never released")


async def test_a_live_owner_is_never_taken_over(store: ClaimStore) -> None:
    assert await store.acquire(KEY, "a", 30)
    assert not await store.acquire(KEY, "b", 30)
    assert await store.acquire(KEY, "a", 30)  # its own claim again
    assert await store.acquire(("binance", "c-2"), "b", 30)  # other keys are free
    assert await store.acquire(("kucoin", "c-1"), "b", 30)  # ids are per venue
    assert await store.renew(KEY, "a", 30)
    assert not await store.renew(KEY, "b", 30)
    await store.release(KEY, "b")  # not b's to release
    assert not await store.acquire(KEY, "b", 30)
    await store.release(KEY, "a")
    assert await store.acquire(KEY, "b", 30)


async def test_a_dead_owners_claim_runs_out_with_its_lease(store: ClaimStore) -> None:
    assert await store.acquire(KEY, "dead", 0.001)
    await until_acquired(store, "next")
    assert not await store.renew(KEY, "dead", 30)  # the old owner lost it for good
    assert not await store.acquire(KEY, "dead", 30)


async def test_holders_in_two_processes_take_turns(store: ClaimStore) -> None:
    first, second = Claims(store, owner="p1"), Claims(store, owner="p2")
    inside: list[str] = []
    entered = asyncio.Event()
    leave = asyncio.Event()

    async def hold(claims: Claims, name: str) -> None:
        async with claims.hold(KEY, wait_seconds=30):
            inside.append(name)
            assert len(inside) == 1, inside  # never two at once
            entered.set()
            if name == "p1":
                await leave.wait()
            inside.remove(name)

    one = asyncio.create_task(hold(first, "p1"))
    await entered.wait()
    two = asyncio.create_task(hold(second, "p2"))
    async with second.try_hold(KEY) as held:
        assert not held  # p1 holds it
    leave.set()
    await asyncio.gather(one, two)
    async with first.try_hold(KEY) as held:
        assert held


async def test_a_waiter_gives_up_with_claim_busy(store: ClaimStore) -> None:
    assert await store.acquire(KEY, "other", 30)
    with pytest.raises(ClaimBusy):
        async with Claims(store, owner="me").hold(KEY, wait_seconds=0.05):
            raise AssertionError("entered a claim another owner holds")


class CountingStore:
    """A claim store that counts renewals (to wait for them, not for time)."""

    def __init__(self, store: ClaimStore) -> None:
        self.store = store
        self.renewed = asyncio.Condition()
        self.renewals = 0

    async def acquire(self, key: tuple[str, str], owner: str, lease_seconds: float) -> bool:
        return await self.store.acquire(key, owner, lease_seconds)

    async def renew(self, key: tuple[str, str], owner: str, lease_seconds: float) -> bool:
        kept = await self.store.renew(key, owner, lease_seconds)
        async with self.renewed:
            self.renewals += 1
            self.renewed.notify_all()
        return kept

    async def release(self, key: tuple[str, str], owner: str) -> None:
        await self.store.release(key, owner)

    async def close(self) -> None:
        await self.store.close()


async def test_a_claim_held_past_its_lease_is_renewed_not_lost(tmp_path: Path) -> None:
    sqlite_claims = SqliteClaims(SqliteDatabase(str(tmp_path / "journal.sqlite3")))
    await sqlite_claims.open()
    store = CountingStore(sqlite_claims)
    try:
        async with Claims(store, owner="worker", lease_seconds=1.0).hold(KEY, wait_seconds=1):
            async with store.renewed:  # four renewals: longer than one lease has passed
                await store.renewed.wait_for(lambda: store.renewals >= 4)
            assert not await sqlite_claims.acquire(KEY, "other", 30)  # still the worker's
        assert await sqlite_claims.acquire(KEY, "other", 30)  # released on the way out
    finally:
        await store.close()
