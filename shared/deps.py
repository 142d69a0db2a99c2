"""The dependencies a service function takes explicitly: settings, pool, redis, twilio.

Web handlers find them on the app (`request.app[DEPS]`); actors call `current()`, set
once per worker process by the broker's `WorkerDeps` middleware on dramatiq's loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aioredis

from shared.config import Settings

if TYPE_CHECKING:
    from shared.twilio import TwilioClient


@dataclass
class Deps:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    twilio: "TwilioClient | None" = None
    extra: dict[str, Any] | None = None


_current: Deps | None = None


def current() -> Deps:
    if _current is None:
        raise RuntimeError("worker deps are not open: is the WorkerDeps middleware installed?")
    return _current


def set_current(deps: Deps | None) -> None:
    global _current
    _current = deps


def redis_client(url: str) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=10, decode_responses=False
    )


async def open_deps(settings: Settings, *, pool_size: int = 10, with_twilio: bool = True) -> Deps:
    """Open pool, redis and twilio client on the running loop."""
    from shared.db import create_pool

    settings.require("database_url", "redis_url")
    pool = await create_pool(settings.database_url, max_size=pool_size)
    redis = redis_client(settings.redis_url)
    twilio = None
    if with_twilio:
        from shared.twilio import TwilioClient

        twilio = TwilioClient.from_settings(settings)
    return Deps(settings=settings, pool=pool, redis=redis, twilio=twilio)


async def close_deps(deps: Deps) -> None:
    if deps.twilio is not None:
        await deps.twilio.close()
    await deps.redis.aclose()
    await deps.pool.close()
