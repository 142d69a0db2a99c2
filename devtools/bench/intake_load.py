"""Intake benchmarks against a running system (web, worker, Twilio simulator).

- `bench_intake(base_url, api_key, rate, count, dsn=...)`: posts `count` signups at a
  steady `rate` per second (open loop: each at its own start time, whatever the others
  do), each with a phone of its own that the simulator answers `mobile`, and reports
  seconds from the POST to its line type being known, as p50/p95/p99/max.
- `write_leads_csv(path, rows)`: a CSV for `leadsms import` with `rows` distinct leads.

    python -m devtools.bench.intake_load intake --base-url http://127.0.0.1:8080 --api-key lsk_... \\
        --rate 50 --count 1000 --dsn "$DATABASE_URL"
    python -m devtools.bench.intake_load csv /tmp/leads.csv --rows 100000
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import time
from typing import Any

import aiohttp

from shared.phones import check_phone


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


def _phones(count: int, rng: random.Random) -> list[str]:
    """Distinct valid numbers the simulator answers `mobile` (last four 1000-9999), drawn at
    random so a rerun is hardly ever answered from the Lookup cache."""
    area = rng.choice(("646", "917", "347", "718"))
    out: list[str] = []
    for idx in rng.sample(range(800 * 9000), count * 2):
        phone = f"({area}) {200 + idx // 9000:03d}-{1000 + idx % 9000:04d}"
        if check_phone(phone).status == "valid":
            out.append(phone)
            if len(out) == count:
                return out
    raise ValueError(f"could not draw {count} valid phones")


async def bench_intake(base_url: str, api_key: str, rate: float, count: int, *, dsn: str | None = None,
                       timeout_s: float = 120.0, seed: int | None = None) -> dict[str, Any]:
    """POST → line type known, at a steady `rate`; see the module docstring.

    With `dsn` (a database on this machine's clock) the moment a line type became known is
    `phone_lines.checked_at`, read once every 0.1 s for all leads: exact, and it adds no
    load. Without it, the leads still open are polled over HTTP, eight requests at a time,
    each lead at most every 50 ms: the figures then include that polling's lag and load.
    """
    rng = random.Random(seed)
    run = f"bench-{int(time.time())}-{rng.randrange(10**6)}"
    phones = _phones(count, rng)
    headers = {"Authorization": f"Bearer {api_key}"}
    posted: dict[int, float] = {}  # lead id -> wall-clock time its POST started
    known: dict[int, float] = {}  # lead id -> wall-clock time its line type was known
    post_times: list[float] = []
    statuses: dict[int, int] = {}

    async def post(session: aiohttp.ClientSession, i: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        started, wall = time.monotonic(), time.time()
        body = {"external_id": f"{run}-{i}", "name": f"Bench {i}", "email": f"bench{i}@example.com",
                "event": "Benchmark", "phone": phones[i]}
        async with session.post(f"{base_url}/v1/leads", json=body, headers=headers) as resp:
            answer = await resp.json(content_type=None)
        post_times.append(time.monotonic() - started)
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
        if resp.status == 202:
            posted[answer["lead_id"]] = wall

    async def watch_db(stop: asyncio.Event) -> None:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            while True:
                open_ids = [i for i in posted if i not in known]
                rows = await conn.fetch(
                    """SELECT l.id, extract(epoch FROM p.checked_at)::float8 AS at FROM leads l
                       JOIN phone_lines p ON p.phone_e164 = l.phone_e164 WHERE l.id = ANY($1::bigint[])""", open_ids)
                known.update((r["id"], r["at"]) for r in rows)
                if stop.is_set() and len(known) == len(posted):
                    return
                await asyncio.sleep(0.1)
        finally:
            await conn.close()

    async def watch_http(session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        gate = asyncio.Semaphore(8)

        async def check(lead_id: int) -> None:
            async with gate, session.get(f"{base_url}/v1/leads/{lead_id}", headers=headers) as resp:
                lead = await resp.json(content_type=None)
            if lead.get("line_type") is not None or lead.get("phone_status") not in ("pending", "valid"):
                known.setdefault(lead_id, time.time())

        while not (stop.is_set() and len(known) == len(posted)):
            await asyncio.gather(*(check(i) for i in list(posted) if i not in known))
            await asyncio.sleep(0.05)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as session:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_db(stop) if dsn else watch_http(session, stop))
        t0 = time.monotonic() + 0.1
        await asyncio.gather(*(post(session, i, t0 + i / rate) for i in range(count)))
        offered_s = time.monotonic() - t0
        stop.set()
        try:
            await asyncio.wait_for(watcher, timeout_s)
        except asyncio.TimeoutError:
            pass
    latencies = [known[i] - posted[i] for i in posted if i in known]
    return {
        "rate": rate, "count": count, "achieved_rate": round(count / offered_s, 1), "statuses": statuses,
        "line_type_known": len(latencies), "measured_by": "phone_lines.checked_at" if dsn else "http polling",
        "post_to_line_type_s": {"p50": _quantile(latencies, 0.50), "p95": _quantile(latencies, 0.95),
                                "p99": _quantile(latencies, 0.99), "max": _quantile(latencies, 1.0)},
        "post_s": {"p50": _quantile(post_times, 0.50), "p95": _quantile(post_times, 0.95)},
    }


def write_leads_csv(path: str, rows: int, *, seed: int = 1) -> str:
    """`rows` distinct leads in the import's columns, with valid US phones."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["external_id", "name", "email", "phone", "event", "signed_up_at"])
        for i in range(rows):
            out.writerow([f"import-{i}", f"Person {i}", f"p{i}@example.com",
                          f"({rng.choice((212, 646, 415, 312))}) {rng.randrange(200, 1000)}-{rng.randrange(10_000):04d}",
                          "Spring seminar", f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}T10:00:00Z"])
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.intake_load")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("intake", help="p95 POST /v1/leads -> line type known at a steady rate")
    p.add_argument("--base-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--dsn", help="the system's DATABASE_URL: exact timings from phone_lines.checked_at")
    p = sub.add_parser("csv", help="write a CSV for leadsms import")
    p.add_argument("path")
    p.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.what == "intake":
        report = asyncio.run(bench_intake(args.base_url, args.api_key, args.rate, args.count, dsn=args.dsn))
        print(json.dumps(report))
    else:
        print(json.dumps({"path": write_leads_csv(args.path, args.rows), "rows": args.rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
