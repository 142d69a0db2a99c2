"""API keys: how they are made, stored (SHA-256 digests only) and checked on every /v1 request.

Keys are 32 random bytes, so a plain SHA-256 digest looked up by index is safe and fast;
the digest, not the key, is what PostgreSQL compares and what the in-process cache holds.

Rotation (`leadsms firm rotate-key --grace 24h`) keeps the previous digest with the end
of its grace; a cached previous key is cached no longer than that end, so it answers 401
from the moment its grace is over, in every web process.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from datetime import datetime, timezone

from aiohttp import web

from firms import queries
from shared.web import DEPS

AUTH_CACHE = web.AppKey("auth_cache", dict)
AUTH_CACHE_TTL_S = 30.0


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    return "lsk_" + secrets.token_urlsafe(32)


async def firm_for_key(app: web.Application, key: str) -> int | None:
    """The firm id for an API key, through a short in-process cache.

    Keys are 32 random bytes, so the SHA-256 digest is looked up by index; the digest,
    not the key, is what is compared and cached.
    """
    digest = hash_api_key(key)
    cache: dict[str, tuple[int | None, float]] = app[AUTH_CACHE]
    hit = cache.get(digest)
    now = time.monotonic()
    if hit is not None and hit[1] > now:
        return hit[0]
    deps = app[DEPS]
    row = await deps.pool.fetchrow(
        "SELECT id, NULL::timestamptz AS expires_at FROM firms WHERE api_key_sha256 = $1", digest)
    if row is None:  # a previous key, still in its grace after a rotation?
        row = await queries.firm_for_previous_key(deps.pool, digest)
    if row is None:  # unknown keys are not cached, so a brute force fills nothing
        return None
    ttl = AUTH_CACHE_TTL_S
    if row["expires_at"] is not None:  # a previous key in its grace: never cached past its end
        ttl = min(ttl, (row["expires_at"] - datetime.now(timezone.utc)).total_seconds())
    if ttl > 0:
        if len(cache) > 10_000:
            cache.clear()
        cache[digest] = (row["id"], now + ttl)
    return row["id"]

