"""Waiting for the processes leadsms starts (the demo, the benchmarks): poll a condition
with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Awaitable, Callable

import aiohttp


async def wait_until(check: Callable[[], Awaitable[Any]], *, timeout: float, interval: float = 0.05,
                     what: str = "condition") -> Any:
    """Poll an async `check` until it returns something truthy, and return that; raise
    TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last: {value!r})")
        await asyncio.sleep(interval)


async def answers_ok(session: aiohttp.ClientSession, url: str) -> bool:
    """Whether GET `url` answers 200 now (a refused or timed-out request is a no)."""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
        async with session.get(url) as resp:
            return resp.status == 200
    return False
