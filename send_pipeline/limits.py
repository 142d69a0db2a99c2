"""The duplicate window and the per-user rate limit, in Redis, in one atomic script.

docs/send-pipeline.md: the first request of (firm, user, conversation, body) takes a key with
SET NX PX <window> holding its pre-allocated message id; a duplicate inside the window
gets that id back. Then `SEND_RATE_LIMIT` accepted sends per rolling 60 s per (firm,
user), counted in a sorted set scored by Redis's own clock (so every web process shares
one clock). A request refused by the limit releases its duplicate key, so a retry after
the limit lifts is not mistaken for a duplicate.

Both steps run in one Lua script: one round trip per send, and no interleaving between
"this is new" and "this is charged". The two keys share a hash tag ({firm:user}), so
the script stays valid on a Redis Cluster.
"""

from __future__ import annotations

import hashlib
import math
import weakref
from dataclasses import dataclass

import redis.asyncio as aioredis

from send_pipeline.messages import body_digest

RATE_WINDOW_MS = 60_000

# KEYS[1] dedupe key, KEYS[2] rate key.
# ARGV[1] message id, ARGV[2] window ms, ARGV[3] limit, ARGV[4] rate window ms.
# Returns {0} accepted, {1, id} duplicate of id, {2, retry_after_ms} rate limited.
_GATE_LUA = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return {1, redis.call('GET', KEYS[1])}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local span = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - span)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
    redis.call('DEL', KEYS[1])
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {2, tonumber(oldest[2]) + span - now}
end
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[2], span)
return {0}
"""

# Undoes an accepted check whose message could not be stored: the duplicate key (only
# while it still holds our id) and the rate-limit charge.
_RELEASE_LUA = """
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class GateResult:
    accepted: bool
    duplicate_of: int | None = None
    retry_after_s: int | None = None


def _tag(firm_id: int, user: str) -> str:
    return f"{firm_id}:{hashlib.sha256(user.encode('utf-8')).hexdigest()[:16]}"


def dedupe_key(firm_id: int, user: str, conversation_id: int, body: str) -> str:
    return f"leadsms:dedupe:{{{_tag(firm_id, user)}}}:{conversation_id}:{body_digest(body)}"


def rate_key(firm_id: int, user: str) -> str:
    return f"leadsms:rate:{{{_tag(firm_id, user)}}}"


class SendGate:
    """The script, registered once per Redis client (EVALSHA after the first call)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._gate = redis.register_script(_GATE_LUA)
        self._release = redis.register_script(_RELEASE_LUA)

    async def check(self, *, firm_id: int, user: str, conversation_id: int, body: str, message_id: int,
                    window_ms: int, limit: int) -> GateResult:
        keys = [dedupe_key(firm_id, user, conversation_id, body), rate_key(firm_id, user)]
        answer = await self._gate(keys=keys, args=[message_id, window_ms, limit, RATE_WINDOW_MS])
        kind = int(answer[0])
        if kind == 0:
            return GateResult(accepted=True)
        if kind == 1:
            return GateResult(accepted=False, duplicate_of=int(answer[1]))
        retry_ms = max(1, int(answer[1]))
        return GateResult(accepted=False, retry_after_s=max(1, math.ceil(retry_ms / 1000)))

    async def release(self, *, firm_id: int, user: str, conversation_id: int, body: str, message_id: int) -> None:
        """Undo an accepted check (the message could not be stored): nothing was sent, so
        neither the duplicate window nor the rate limit should remember it."""
        keys = [dedupe_key(firm_id, user, conversation_id, body), rate_key(firm_id, user)]
        await self._release(keys=keys, args=[message_id])


_gates: "weakref.WeakKeyDictionary[aioredis.Redis, SendGate]" = weakref.WeakKeyDictionary()


def gate_for(redis: aioredis.Redis) -> SendGate:
    """The gate of a Redis client, built once (no per-request script objects)."""
    gate = _gates.get(redis)
    if gate is None:
        gate = _gates[redis] = SendGate(redis)
    return gate
