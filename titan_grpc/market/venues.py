"""Calling several venues at once, each under its own deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from titan_grpc.exchanges.base import ExchangeBackend

T = TypeVar("T")


async def gather_venues(
    backends: Sequence[ExchangeBackend],
    call: Callable[[ExchangeBackend], Awaitable[T]],
    timeout_seconds: float,
) -> tuple[list[tuple[ExchangeBackend, T]], list[tuple[ExchangeBackend, BaseException]]]:
    """Results and errors side by side; a slow venue costs at most ``timeout_seconds``."""

    async def one(backend: ExchangeBackend) -> T:
        return await asyncio.wait_for(call(backend), timeout_seconds)

    outcomes = await asyncio.gather(*(one(b) for b in backends), return_exceptions=True)
    results: list[tuple[ExchangeBackend, T]] = []
    errors: list[tuple[ExchangeBackend, BaseException]] = []
    for backend, outcome in zip(backends, outcomes, strict=True):
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, BaseException):
            errors.append((backend, outcome))
        else:
            results.append((backend, outcome))
    return results, errors
