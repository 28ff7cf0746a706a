"""Merging several async iterators into one stream that stops on request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


@dataclass(frozen=True, slots=True)
class Tagged(Generic[T]):
    """An item and the index of the iterator it came from."""

    source: int
    item: T


async def merge(
    iterators: list[AsyncIterator[T]], stop: asyncio.Event, buffer: int = 64
) -> AsyncIterator[Tagged[T]]:
    """Yield items from all ``iterators`` as they arrive until ``stop`` is set.

    An iterator's exception is re-raised here. When the consumer goes away (client
    cancelled) or ``stop`` is set, every pump task is cancelled and every iterator is
    closed, so no task or upstream subscription outlives the stream. The buffer is
    bounded: a slow consumer holds back only its own pumps.
    """
    queue: asyncio.Queue[Tagged[T] | _Failure] = asyncio.Queue(maxsize=buffer)

    async def pump(index: int, iterator: AsyncIterator[T]) -> None:
        try:
            async for item in iterator:
                await queue.put(Tagged(index, item))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # handed to the consumer, which re-raises it
            await queue.put(_Failure(error))
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    pumps = [asyncio.create_task(pump(i, it)) for i, it in enumerate(iterators)]
    stopper = asyncio.create_task(stop.wait())
    getter: asyncio.Task[Tagged[T] | _Failure] | None = None
    try:
        while not stop.is_set():
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                break
            entry = getter.result()
            if isinstance(entry, _Failure):
                raise entry.error
            yield entry
    finally:
        tasks = [*pumps, stopper, *([getter] if getter is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
