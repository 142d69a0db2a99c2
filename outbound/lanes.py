"""At most two requests in flight per endpoint: two lanes, each a lease in Redis.

Whoever takes a lane (the dispatcher, the sweeper, a drain that finished its budget)
enqueues one drain job holding the lane's token; the job renews the lease while it works
and gives it back when nothing is due. A job lost with its worker leaves a lease that
runs out (twice `WEBHOOK_TIMEOUT_S`: longer than one attempt and its bookkeeping), after
which the sweeper takes the lane again.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

from shared.config import Settings

LANES = 2


def lease_s(settings: Settings) -> float:
    return 2.0 * settings.webhook_timeout_s

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


def _key(endpoint_id: int, lane: int) -> str:
    return f"leadsms:webhooks:lane:{endpoint_id}:{lane}"


async def take(redis: aioredis.Redis, endpoint_id: int, lease: float, want: int = LANES) -> list[tuple[int, str]]:
    """Take up to `want` free lanes of the endpoint: [(lane, token)]."""
    taken = []
    for lane in range(LANES):
        if len(taken) >= want:
            break
        token = secrets.token_hex(8)
        if await redis.set(_key(endpoint_id, lane), token, nx=True, px=int(lease * 1000)):
            taken.append((lane, token))
    return taken


async def take_lane(redis: aioredis.Redis, endpoint_id: int, lane: int, token: str, lease: float) -> bool:
    return bool(await redis.set(_key(endpoint_id, lane), token, nx=True, px=int(lease * 1000)))


async def renew(redis: aioredis.Redis, endpoint_id: int, lane: int, token: str, lease: float) -> bool:
    return bool(await redis.eval(_RENEW, 1, _key(endpoint_id, lane), token, int(lease * 1000)))


async def release(redis: aioredis.Redis, endpoint_id: int, lane: int, token: str) -> None:
    await redis.eval(_RELEASE, 1, _key(endpoint_id, lane), token)
