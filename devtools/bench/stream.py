"""`leadsms bench stream`: SSE clients of many firms on one web process, events at a fixed rate.

1,000 clients over 200 firms (5 per firm) hold `GET /v1/events/stream` open on the
cluster's one web; a writer commits events at 200/s (spread over the firms, each in its
own transaction, then the Redis wake-up the product publishes). Each event carries its
number; the writer notes when its commit returned, each client when the event arrived.

Figures: p50/p95/p99 from commit to client receipt over every delivery, the web's CPU per
delivered event, and its RSS with every stream open (before and after the load).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from devtools import waiting
from devtools.bench import load
from devtools.bench.seed import phones

STREAM_CLIENTS = 1000
STREAM_FIRMS = 200
STREAM_RATE = 200.0
STREAM_DURATION_S = 20.0


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def _seed_stream_firms(system: Any, n: int) -> list[tuple[int, str]]:
    """`n` firms of their own (numbers apart from the send scenarios' firms): (id, api key)."""
    from firms.auth import hash_api_key, new_api_key

    out = []
    for i, number in enumerate(phones("332", 4_000_000, n)):
        key = new_api_key()
        rows = await system.sql("INSERT INTO firms (name, sms_number, api_key_sha256) VALUES ($1, $2, $3) RETURNING id",
                                f"stream firm {i + 1}", number, hash_api_key(key))
        out.append((rows[0]["id"], key))
    return out


async def _client(http: aiohttp.ClientSession, url: str, token: str, received: list[tuple[int, float]],
                  ready: asyncio.Event, opened: list[int], want: int) -> None:
    async with http.get(f"{url}/v1/events/stream", params={"token": token},
                        timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as resp:
        resp.raise_for_status()
        opened.append(1)
        if len(opened) >= want:
            ready.set()
        async for raw in resp.content:
            if raw.startswith(b"data: "):
                at = time.time()
                body = raw[6:]
                # the item's data is {"n": ...}: cheap to find without parsing the JSON
                mark = body.rfind(b'"n":')
                n = int(body[mark + 4:body.index(b"}", mark)])
                received.append((n, at))


async def run_stream(system: Any) -> dict[str, Any]:
    o = system.opts
    return await measure_stream(system, clients=o.stream_clients, firms=o.stream_firms, rate=o.stream_rate,
                                duration=o.stream_duration)


async def measure_stream(system: Any, *, clients: int = STREAM_CLIENTS, firms: int = STREAM_FIRMS,
                         rate: float = STREAM_RATE, duration: float = STREAM_DURATION_S) -> dict[str, Any]:
    import events
    from shared.db import create_pool
    from shared.deps import redis_client

    assert system.cluster is not None
    url = system.web_url
    made = await _seed_stream_firms(system, firms)
    web_pid = system.cluster.groups("web")["web"]
    pool = await create_pool(system.dsn, max_size=8)
    redis = redis_client(system.services.redis_url)
    received: list[tuple[int, float]] = []
    committed: dict[int, float] = {}
    ready = asyncio.Event()
    opened: list[int] = []
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    tasks: list[asyncio.Task] = []
    try:
        rss_idle = _rss_mb(web_pid)
        for c in range(clients):
            firm_id, key = made[c % firms]
            async with http.post(f"{url}/v1/stream-tokens", headers={"Authorization": f"Bearer {key}"}) as resp:
                token = (await resp.json())["token"]
            tasks.append(asyncio.create_task(_client(http, url, token, received, ready, opened, clients)))
        await asyncio.wait_for(ready.wait(), 120)
        rss_open = _rss_mb(web_pid)
        meter = system.meter("web")
        await meter.begin()
        total = int(rate * duration)
        t0 = time.monotonic()
        for n in range(total):
            delay = t0 + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            firm_id = made[n % firms][0]
            async with pool.acquire() as conn:
                await events.record(conn, firm_id, "lead.updated", {"n": n})
            committed[n] = time.time()
            await events.wake(redis, [firm_id])
        per_firm = clients // firms
        expected = total * per_firm
        async def all_delivered() -> bool:
            return len(received) >= expected

        await waiting.wait_until(all_delivered, timeout=60, what=f"{expected} deliveries")
        spent = await meter.end()
        rss_after = _rss_mb(web_pid)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.close()
        await redis.aclose()
        await pool.close()
    latencies = sorted(at - committed[n] for n, at in received if n in committed)
    web_cpu = spent.get("web", 0.0)
    return {
        "scenario": "stream", "clients": clients, "firms": firms, "rate": rate, "duration_s": duration,
        "events": total, "deliveries_expected": expected, "delivered": len(received),
        "commit_to_client": load.latency_summary(latencies),
        "web_cpu_s": round(web_cpu, 2),
        "web_cpu_ms_per_delivery": round(web_cpu * 1000 / max(1, len(received)), 3),
        "web_cpu_ms_per_event": round(web_cpu * 1000 / max(1, total), 3),
        "web_rss_mb": {"before_streams": rss_idle, "streams_open": rss_open, "after_load": rss_after},
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
    }
