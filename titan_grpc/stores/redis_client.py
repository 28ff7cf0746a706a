"""A small Redis connection helper shared by the stores that live in Redis.

Client: redis-py's asyncio API (``redis.asyncio``), the maintained official client; it
speaks to Redis and Valkey alike. ``open_redis`` builds one client (with its connection
pool) from ``TITAN_REDIS_URL`` and checks it answers; ``RedisScript`` wraps a Lua script
run atomically on the server (EVALSHA, loaded again if the server forgot it). Errors never
carry the URL (it may hold a password).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from titan_grpc.errors import StoreUnavailable

CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 5.0

Redis = aioredis.Redis


async def open_redis(url: str, *, purpose: str = "store") -> Redis:
    """A client for ``url`` (redis://, rediss:// or unix://) that has answered a PING."""
    try:
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=COMMAND_TIMEOUT_SECONDS,
            health_check_interval=30,
            retry_on_timeout=False,
            client_name=f"titan-{purpose}",
        )
    except ValueError as error:
        raise StoreUnavailable(f"TITAN_REDIS_URL is not a Redis URL: {error}") from None
    try:
        await client.ping()
    except (RedisError, OSError) as error:
        await client.aclose()
        raise StoreUnavailable(f"Redis ({purpose}) is unreachable: {describe(error)}") from None
    return client


def describe(error: BaseException) -> str:
    """One line about a Redis failure, without addresses' credentials."""
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(
        ": "
    )


class RedisScript:
    """A Lua script run atomically by the server; engine errors become StoreUnavailable."""

    def __init__(self, client: Redis, source: str) -> None:
        self._script = client.register_script(source)

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        try:
            return await self._script(keys=list(keys), args=list(args))
        except (RedisError, OSError) as error:
            raise StoreUnavailable(f"Redis is unavailable: {describe(error)}") from None
