"""Holding claims: wait for a key, keep its lease alive while working, let it go.

The safety comes from the ``ClaimStore`` (atomic in SQLite, PostgreSQL or Redis, shared
by every process using it). In front of it, callers in one process queue on a local
lock so only one of them at a time polls the store for a key held elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
import weakref
from collections.abc import AsyncIterator

from titan_grpc.errors import StoreUnavailable
from titan_grpc.stores.base import ClaimKey, ClaimStore

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 15.0
POLL_FIRST_SECONDS = 0.01
POLL_MAX_SECONDS = 0.2


class ClaimBusy(Exception):
    """Another live owner kept the claim for longer than the caller would wait."""


def new_owner_id() -> str:
    """host:pid:random, unique per process start (a restarted pid is a new owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Claims:
    """Claims of one process (one owner id) on a ``ClaimStore``."""

    def __init__(
        self,
        store: ClaimStore,
        *,
        owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.owner = owner or new_owner_id()
        self.lease_seconds = lease_seconds
        self._local: weakref.WeakValueDictionary[ClaimKey, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._renewers: set[asyncio.Task[None]] = set()

    def _local_lock(self, key: ClaimKey) -> asyncio.Lock:
        lock = self._local.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._local[key] = lock
        return lock

    @contextlib.asynccontextmanager
    async def hold(self, key: ClaimKey, *, wait_seconds: float) -> AsyncIterator[None]:
        """Hold ``key`` for the block; wait up to ``wait_seconds`` for a live owner to
        finish, else raise ClaimBusy. The lease is renewed while the block runs."""
        deadline = time.monotonic() + wait_seconds
        lock = self._local_lock(key)
        try:
            async with asyncio.timeout(wait_seconds):
                await lock.acquire()
        except TimeoutError:
            raise ClaimBusy(key) from None
        try:
            delay = POLL_FIRST_SECONDS
            while not await self.store.acquire(key, self.owner, self.lease_seconds):
                if time.monotonic() + delay > deadline:
                    raise ClaimBusy(key)
                await asyncio.sleep(delay)
                delay = min(delay * 2, POLL_MAX_SECONDS)
            async with self._leased(key):
                yield
        finally:
            lock.release()

    @contextlib.asynccontextmanager
    async def try_hold(self, key: ClaimKey) -> AsyncIterator[bool]:
        """Hold ``key`` only if nobody else does right now; yields whether it is held."""
        lock = self._local_lock(key)
        if lock.locked():
            yield False
            return
        async with lock:
            if not await self.store.acquire(key, self.owner, self.lease_seconds):
                yield False
                return
            async with self._leased(key):
                yield True

    @contextlib.asynccontextmanager
    async def _leased(self, key: ClaimKey) -> AsyncIterator[None]:
        # The renewer is told to stop, never cancelled: cancelling a store call midway
        # can stall in the client's clean-up (seen with redis-py), and a renewal that
        # lands after the release changes nothing (it only extends the caller's own claim).
        done = asyncio.Event()
        renewer = asyncio.create_task(self._renew(key, done))
        self._renewers.add(renewer)
        renewer.add_done_callback(self._renewers.discard)
        try:
            yield
        finally:
            done.set()
            try:
                await asyncio.shield(self.store.release(key, self.owner))
            except (StoreUnavailable, OSError, ConnectionError) as error:
                # The lease runs out by itself; nobody else is blocked for longer than it.
                log.warning("could not release the claim on %s/%s: %s", *key, error)

    async def _renew(self, key: ClaimKey, done: asyncio.Event) -> None:
        while True:
            try:
                async with asyncio.timeout(self.lease_seconds / 3):
                    await done.wait()
                return
            except TimeoutError:
                pass
            try:
                kept = await self.store.renew(key, self.owner, self.lease_seconds)
            except (StoreUnavailable, OSError, ConnectionError) as error:
                log.warning("could not renew the claim on %s/%s: %s", *key, error)
                continue
            if done.is_set():
                return
            if not kept:
                log.error(
                    "lost the claim on %s/%s (stalled past its %.1fs lease); another process "
                    "may reconcile this order meanwhile",
                    *key,
                    self.lease_seconds,
                )
                return
