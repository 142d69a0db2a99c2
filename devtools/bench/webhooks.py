"""`leadsms bench webhooks`: outbound webhook deliveries to a local receiver.

A `leadsms worker --queues deliveries` joins the cluster (WEBHOOKS_ALLOW_PRIVATE=1, the
receiver being on this machine); each of `--webhook-endpoints` firms gets one endpoint
on a receiver in the bench process that verifies every request's signature
(`standardwebhooks`). Events are committed straight into the event log, each with the
Redis wake-up a writer publishes, and carry their number.

- saturation: `--webhook-events` events committed as fast as the bench can, spread over
  the firms: deliveries/s from the first commit to the last receipt.
- fixed rate: `--webhook-rate` events/s for `--webhook-duration` s, each in its own
  transaction: p50/p95/p99 from the commit's return to the receipt.

CPU per delivery is the deliveries worker's, PostgreSQL's and Redis's over each phase.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook

from devtools import waiting
from devtools.bench import load
from devtools.bench.seed import phones
from devtools.local_services import free_port

WEBHOOK_EVENTS = 10_000
WEBHOOK_ENDPOINTS = 8
WEBHOOK_RATE = 100.0
WEBHOOK_DURATION_S = 20.0


class _Receiver:
    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets  # path -> secret
        self.received: dict[int, float] = {}
        self.requests = 0
        self.unverified = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        at = time.time()
        self.requests += 1
        try:
            payload = Webhook(self.secrets[request.match_info["name"]]).verify(body, dict(request.headers))
        except Exception:
            self.unverified += 1
            return web.Response(status=400)
        self.received.setdefault(payload["data"]["n"], at)
        return web.Response(status=204)


async def _seed(system: Any, n: int, url: str) -> tuple[list[int], dict[str, str]]:
    """`n` firms of their own, each with one endpoint (`url`/<i>); (firm ids, path -> secret)."""
    from firms.auth import hash_api_key, new_api_key
    from outbound import whsec

    firm_ids, secrets = [], {}
    for i, number in enumerate(phones("334", 5_000_000, n)):
        rows = await system.sql("INSERT INTO firms (name, sms_number, api_key_sha256) VALUES ($1, $2, $3) RETURNING id",
                                f"webhook firm {i + 1}", number, hash_api_key(new_api_key()))
        firm_id = rows[0]["id"]
        secret = whsec.new_secret()
        await system.sql("INSERT INTO webhook_endpoints (firm_id, url, event_types, secret_enc) VALUES ($1, $2, $3, $4)",
                         firm_id, f"{url}/{i}", ["*"], whsec.seal(None, secret))
        firm_ids.append(firm_id)
        secrets[str(i)] = secret
    return firm_ids, secrets


def _cpu_per(spent: dict[str, float], count: int) -> dict[str, float]:
    return {k: round(v * 1000 / max(1, count), 3) for k, v in spent.items() if k != "bench-client"}


async def run_webhooks(system: Any) -> dict[str, Any]:
    o = system.opts
    return await measure_webhooks(system, events_n=o.webhook_events, endpoints=o.webhook_endpoints,
                                  rate=o.webhook_rate, duration=o.webhook_duration)


async def measure_webhooks(system: Any, *, events_n: int = WEBHOOK_EVENTS, endpoints: int = WEBHOOK_ENDPOINTS,
                           rate: float = WEBHOOK_RATE, duration: float = WEBHOOK_DURATION_S) -> dict[str, Any]:
    import events
    from shared.db import create_pool
    from shared.deps import redis_client

    cluster = system.cluster
    assert cluster is not None
    port = free_port()
    firm_ids, secrets = await _seed(system, endpoints, f"http://127.0.0.1:{port}/hook")
    receiver = _Receiver(secrets)
    app = web.Application()
    app.router.add_post("/hook/{name}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = {**cluster.env(), "WEBHOOKS_ALLOW_PRIVATE": "1", "WORKER_METRICS_PORT": "0"}
    cluster.spawn("deliveries", cluster.cli("worker", "--queues", "deliveries"), env)
    pool = await create_pool(system.dsn, max_size=8)
    redis = redis_client(system.services.redis_url)
    committed: dict[int, float] = {}
    try:
        await asyncio.sleep(3)  # the deliveries worker boots and subscribes

        async def commit(ns: list[int], firm_id: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                for n in ns:
                    await events.record(conn, firm_id, "lead.updated", {"n": n})
            at = time.time()
            for n in ns:
                committed[n] = at
            await events.wake(redis, [firm_id])

        # ---- saturation
        meter = system.meter("deliveries")
        await meter.begin()
        t0 = time.time()
        batch = 20
        sem = asyncio.Semaphore(8)

        async def one(start: int) -> None:
            async with sem:
                ns = list(range(start, min(events_n, start + batch)))
                await commit(ns, firm_ids[(start // batch) % len(firm_ids)])

        await asyncio.gather(*(one(s) for s in range(0, events_n, batch)))

        async def all_in(target: int):
            async def done() -> bool:
                return len(receiver.received) >= target
            return done

        await waiting.wait_until(await all_in(events_n), timeout=system.opts.drain_timeout,
                                 what=f"{events_n} deliveries")
        elapsed = max(receiver.received.values()) - t0
        spent_sat = await meter.end()
        saturation = {"events": events_n, "delivered": len(receiver.received),
                      "deliveries_per_s": round(events_n / elapsed, 1), "seconds": round(elapsed, 2),
                      "cpu_ms_per_delivery": _cpu_per(spent_sat, events_n)}

        # ---- fixed rate
        base = events_n
        total = int(rate * duration)
        meter = system.meter("deliveries")
        await meter.begin()
        t0m = time.monotonic()
        for k in range(total):
            delay = t0m + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await commit([base + k], firm_ids[k % len(firm_ids)])
        await waiting.wait_until(await all_in(events_n + total), timeout=system.opts.drain_timeout,
                                 what=f"{total} deliveries at {rate:g}/s")
        spent_fixed = await meter.end()
        latencies = [receiver.received[n] - committed[n] for n in range(base, base + total)]
        fixed = {"rate": rate, "duration_s": duration, "events": total,
                 "commit_to_receipt": load.latency_summary(latencies),
                 "cpu_ms_per_delivery": _cpu_per(spent_fixed, total)}
    finally:
        await cluster.stop("deliveries")
        await redis.aclose()
        await pool.close()
        await runner.cleanup()
    return {"scenario": "webhooks", "endpoints": endpoints, "saturation": saturation, "fixed": fixed,
            "requests": receiver.requests, "duplicates": receiver.requests - len(receiver.received) - receiver.unverified,
            "unverified": receiver.unverified}
