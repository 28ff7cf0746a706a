"""Claims in Redis (``TITAN_REDIS_URL``): one key per (exchange, client order id).

``SET key owner NX PX lease`` takes a free key; Lua scripts take an expired-then-recreated
key only for its own owner, and renew or release a key only while its value is still
the caller's owner id. Leases are Redis key expiries, measured on the server's clock.
"""

from __future__ import annotations

from titan_grpc.stores.base import ClaimKey
from titan_grpc.stores.redis_client import Redis, RedisScript

KEY_PREFIX = "titan:claim:"

# KEYS[1] claim key; ARGV[1] owner, ARGV[2] lease in ms. 1 = held by ARGV[1] now.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def claim_key(key: ClaimKey) -> str:
    exchange, client_order_id = key
    return f"{KEY_PREFIX}{exchange}:{client_order_id}"


class RedisClaims:
    def __init__(self, client: Redis) -> None:
        self._client = client
        self._acquire = RedisScript(client, _ACQUIRE)
        self._renew = RedisScript(client, _RENEW)
        self._release = RedisScript(client, _RELEASE)

    async def acquire(self, key: ClaimKey, owner: str, lease_seconds: float) -> bool:
        return bool(await self._acquire([claim_key(key)], [owner, _ms(lease_seconds)]))

    async def renew(self, key: ClaimKey, owner: str, lease_seconds: float) -> bool:
        return bool(await self._renew([claim_key(key)], [owner, _ms(lease_seconds)]))

    async def release(self, key: ClaimKey, owner: str) -> None:
        await self._release([claim_key(key)], [owner])

    async def close(self) -> None:
        await self._client.aclose()


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
