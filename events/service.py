"""The feed's behaviour: read a page after a cursor, stream tokens, stream slots.

Cursors are opaque decimal strings: the firm's event number. A cursor below the firm's
prune mark is refused with 410 `cursor_expired` (the client reloads its screens, then
starts again from `next`); anything that is not one of the firm's cursors is 400.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from events import queries
from shared.errors import HttpError

FEED_DEFAULT_LIMIT = 100
FEED_MAX_LIMIT = 500
MAX_CURSOR_DIGITS = 18


def parse_cursor(raw: str | None) -> int | None:
    """The event number a cursor names; None when absent; 400 when malformed."""
    if raw is None:
        return None
    raw = raw.strip()
    if not raw or len(raw) > MAX_CURSOR_DIGITS or not (raw.isascii() and raw.isdigit()):
        raise HttpError(400, "invalid_cursor", "The cursor is not one this feed gave out.")
    return int(raw)


async def check_cursor(conn: Any, firm_id: int, after: int | None) -> int:
    """The firm's newest cursor, once `after` (None: start now) is known to be readable
    (else 400 / 410)."""
    bounds = await queries.feed_bounds(conn, firm_id)
    if after is None:
        return bounds["last_seq"]
    if after > bounds["last_seq"]:
        raise HttpError(400, "invalid_cursor", "The cursor is not one this feed gave out.")
    if after < bounds["pruned_to"]:
        raise HttpError(410, "cursor_expired",
                        "Events after this cursor have been pruned. Reload, then read the feed from its new start.")
    return bounds["last_seq"]


def item_json(row: asyncpg.Record) -> dict[str, Any]:
    """api.md's feed item: {cursor, type, at, data}."""
    return {"cursor": str(row["seq"]), "type": row["type"], "at": row["at"].isoformat(),
            "data": json.loads(row["data"])}


def item_text(row: asyncpg.Record) -> str:
    """The feed item as JSON text, without decoding `data` again (the stream's hot path)."""
    return (f'{{"cursor":"{row["seq"]}","type":"{row["type"]}","at":"{row["at"].isoformat()}",'
            f'"data":{row["data"]}}}')


async def feed_page(pool: asyncpg.Pool, firm_id: int, raw_after: str | None, limit: int) -> dict[str, Any]:
    """`GET /v1/events`: the items after the cursor and `next`; without a cursor no items
    and `next` = the current cursor (a place to start)."""
    after = parse_cursor(raw_after)
    async with pool.acquire() as conn:
        newest = await check_cursor(conn, firm_id, after)
        if after is None:
            return {"items": [], "next": str(newest)}
        rows = await queries.events_after(conn, firm_id, after, limit)
    return {"items": [item_json(r) for r in rows], "next": str(rows[-1]["seq"] if rows else after)}


# ---- stream tokens -----------------------------------------------------------------------

def _token_key(token: str) -> str:
    return "stream_token:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue_stream_token(redis: aioredis.Redis, firm_id: int, ttl_s: int) -> dict[str, Any]:
    """A short-lived token for one firm's stream; Redis keeps only its digest, with the TTL."""
    token = "lst_" + secrets.token_urlsafe(24)
    await redis.set(_token_key(token), str(firm_id), ex=ttl_s)
    expires_at = datetime.now(timezone.utc) + timedelta(seconds=ttl_s)
    return {"token": token, "expires_at": expires_at.isoformat(timespec="seconds")}


async def firm_for_stream_token(redis: aioredis.Redis, token: str | None) -> int:
    """The firm a stream token belongs to; 401 for a missing, unknown or expired one."""
    if not token or len(token) > 200:
        raise HttpError(401, "invalid_stream_token", "A valid stream token is required (POST /v1/stream-tokens).")
    value = await redis.get(_token_key(token))
    if value is None:
        raise HttpError(401, "invalid_stream_token", "The stream token is unknown or has expired.")
    return int(value)


# ---- open streams per firm (every web process counts in one Redis sorted set) -------------

_TAKE_SLOT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(ARGV[3]) * 1000))
return 1
"""


def _slots_key(firm_id: int) -> str:
    return f"streams:{{{firm_id}}}"


async def take_stream_slot(redis: aioredis.Redis, firm_id: int, limit: int, lease_s: float) -> str:
    """Count one more open stream for the firm, or 429 at `limit`. A slot is a lease that
    the stream renews on each heartbeat, so a web that died frees its slots by itself."""
    slot = secrets.token_hex(8)
    ok = await redis.eval(_TAKE_SLOT, 1, _slots_key(firm_id), time.time(), limit, lease_s, slot)
    if not ok:
        raise HttpError(429, "too_many_streams",
                        f"This firm already has {limit} open streams. Close one, or try again shortly.",
                        headers={"Retry-After": "5"})
    return slot


async def renew_stream_slot(redis: aioredis.Redis, firm_id: int, slot: str, lease_s: float) -> None:
    await redis.zadd(_slots_key(firm_id), {slot: time.time() + lease_s}, xx=True)


async def release_stream_slot(redis: aioredis.Redis, firm_id: int, slot: str) -> None:
    await redis.zrem(_slots_key(firm_id), slot)
