"""The load generator: an open loop at a fixed offered rate, and a closed loop at saturation.

Open loop: request i starts at t0 + i/rate whatever happened to the earlier ones, so a
slow server shows up as latency, not as a politely lower rate (no coordinated omission).
Closed loop: `concurrency` requests in flight, each starting when one finishes: the
fastest rate the server sustains.

Requests are prepared before the clock starts (bodies encoded, headers built), so the
generator spends as little CPU as it can on the cores it shares with the system.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import aiohttp


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    data: bytes | None = None
    headers: dict[str, str] | None = None
    tag: Any = None  # what the caller needs to match the outcome later


@dataclass
class Outcome:
    request: Request
    started: float  # wall clock (time.time()), comparable with other processes' clocks
    elapsed: float  # seconds for the HTTP round trip
    status: int | None
    body: Any = None  # parsed JSON when asked for
    error: str | None = None


def session(limit: int = 256) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit, force_close=False),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def _one(s: aiohttp.ClientSession, req: Request, want_json: bool) -> Outcome:
    started = time.time()
    t0 = time.perf_counter()
    try:
        async with s.request(req.method, req.url, data=req.data, headers=req.headers) as resp:
            raw = await resp.read()
            elapsed = time.perf_counter() - t0
            body = None
            if want_json and raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
            return Outcome(req, started, elapsed, resp.status, body)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return Outcome(req, started, time.perf_counter() - t0, None, error=f"{type(exc).__name__}: {exc}")


async def open_loop(s: aiohttp.ClientSession, requests: Sequence[Request], rate: float, *, want_json: bool = True,
                    on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Start request i at t0 + i/rate; wait for every one. `on_done` sees each outcome as
    it arrives (a watcher can start on it while later requests are still to come)."""

    async def one(req: Request) -> Outcome:
        outcome = await _one(s, req, want_json)
        if on_done is not None:
            on_done(outcome)
        return outcome

    tasks: list[asyncio.Task] = []
    t0 = time.perf_counter() + 0.05
    for i, req in enumerate(requests):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(req)))
    return list(await asyncio.gather(*tasks))


async def closed_loop(s: aiohttp.ClientSession, requests: Sequence[Request], concurrency: int,
                      *, want_json: bool = True, on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """`concurrency` requests in flight until all are done."""
    out: list[Outcome | None] = [None] * len(requests)
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < len(requests):
            i = next_index
            next_index += 1
            outcome = await _one(s, requests[i], want_json)
            out[i] = outcome
            if on_done is not None:
                on_done(outcome)

    await asyncio.gather(*(lane() for _ in range(max(1, min(concurrency, len(requests))))))
    return [o for o in out if o is not None]


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def latency_summary(values_s: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds."""
    v = sorted(values_s)
    ms = lambda x: None if x is None else round(x * 1000, 1)  # noqa: E731
    return {"n": len(v), "p50_ms": ms(percentile(v, 50)), "p95_ms": ms(percentile(v, 95)),
            "p99_ms": ms(percentile(v, 99)), "max_ms": ms(v[-1] if v else None)}


def status_counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in outcomes:
        key = str(o.status) if o.status is not None else "error"
        counts[key] = counts.get(key, 0) + 1
    return counts
