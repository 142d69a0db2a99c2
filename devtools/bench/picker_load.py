"""Picker latency, measured through HTTP against a running `leadsms web`.

`bench_picker(...)` is the reusable part (the benchmarks issue calls it); `main` is a
command that can also set the stage: a firm, N generated leads, a `leadsms web` process.

    # everything (DATABASE_URL, REDIS_URL set; makes a firm and 1,000,000 leads):
    python -m devtools.bench.picker_load --leads 1000000
    # against a web and a firm you already have:
    python -m devtools.bench.picker_load --url http://127.0.0.1:8080 --key lsk_... --firm 1

Queries come from the firm's own data, so they match something: for 3+ characters a
stated mix of name fragments, email fragments and phone digits in typed formats; and
separately 2-character fragments, which take the bounded (non-trigram) path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import aiohttp
import asyncpg

MIX_3PLUS = {"name": 0.4, "email": 0.3, "phone": 0.3}


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def summarize(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)
    return {
        "count": len(ordered),
        "p50_ms": round(percentile(ordered, 50), 2),
        "p95_ms": round(percentile(ordered, 95), 2),
        "p99_ms": round(percentile(ordered, 99), 2),
        "max_ms": round(ordered[-1], 2) if ordered else float("nan"),
        "mean_ms": round(statistics.fmean(ordered), 2) if ordered else float("nan"),
    }


async def bench_picker(base_url: str, api_key: str, queries: Iterable[tuple[str, str]], *,
                       concurrency: int = 1, warmup: int = 30) -> dict[str, Any]:
    """Time `GET /v1/leads/sendable?q=` for each (kind, q); percentiles overall and by kind.

    Sequential by default (concurrency 1): the figure is the latency one staff member
    sees, not throughput. The first `warmup` queries are run and not counted (connection
    pool, prepared statements, caches).
    """
    queries = list(queries)
    headers = {"Authorization": f"Bearer {api_key}"}
    latencies: list[tuple[str, float, int]] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=max(1, concurrency))
    async with aiohttp.ClientSession(base_url=base_url, headers=headers, connector=connector) as http:
        async def one(kind: str, q: str, record: bool) -> None:
            started = time.perf_counter()
            async with http.get("/v1/leads/sendable", params={"q": q}) as resp:
                body = await resp.read()
                elapsed = (time.perf_counter() - started) * 1000
                if resp.status != 200:
                    errors.append(f"{resp.status} for {q!r}: {body[:200]!r}")
                    return
            if record:
                latencies.append((kind, elapsed, len(json.loads(body)["items"])))

        for kind, q in queries[:warmup]:
            await one(kind, q, False)
        queue: asyncio.Queue = asyncio.Queue()
        for item in queries:
            queue.put_nowait(item)

        async def runner() -> None:
            while not queue.empty():
                kind, q = queue.get_nowait()
                await one(kind, q, True)

        started = time.perf_counter()
        await asyncio.gather(*(runner() for _ in range(max(1, concurrency))))
        wall = time.perf_counter() - started
    result: dict[str, Any] = summarize([ms for _, ms, _ in latencies])
    result["by_kind"] = {k: summarize([ms for kind, ms, _ in latencies if kind == k])
                         for k in sorted({kind for kind, _, _ in latencies})}
    result["empty_answers"] = sum(1 for _, _, n in latencies if n == 0)
    result["requests_per_s"] = round(len(latencies) / wall, 1) if wall else None
    result["warmup"] = min(warmup, len(queries))
    result["errors"] = errors[:10]
    result["error_count"] = len(errors)
    return result


async def sample_queries(conn: asyncpg.Connection, firm_id: int, n: int, *, seed: int = 1,
                         chars: str = "3+") -> list[tuple[str, str]]:
    """`n` (kind, q) pairs built from the firm's leads.

    chars "3+": MIX_3PLUS of name fragments (3-6 characters of a first or last name,
    from its start or inside it), email fragments (3-8 characters of the local part or
    the domain) and phone digits (3-7 consecutive digits of the national number, typed as
    plain digits, "(212) 555", "212-555" or "+1212555"). chars "2": 2-character
    fragments of names and emails.
    """
    rng = random.Random(seed)
    rows = await conn.fetch(
        """SELECT name, email, phone_e164 FROM leads TABLESAMPLE SYSTEM (2)
           WHERE firm_id = $1 AND phone_e164 IS NOT NULL AND name <> '' AND email <> ''
           LIMIT $2""",
        firm_id, n * 3,
    )
    if not rows:
        raise SystemExit(f"firm {firm_id} has no leads to sample queries from")
    out: list[tuple[str, str]] = []
    kinds = list(MIX_3PLUS)
    weights = [MIX_3PLUS[k] for k in kinds]
    while len(out) < n:
        row = rng.choice(rows)
        if chars == "2":
            text = rng.choice((row["name"], row["email"]))
            i = rng.randrange(0, max(1, len(text) - 1))
            if len(text[i:i + 2].strip()) == 2:
                out.append(("two_chars", text[i:i + 2]))
            continue
        kind = rng.choices(kinds, weights)[0]
        if kind == "name":
            word = rng.choice(row["name"].split())
            size = rng.randint(3, 6)
            start = 0 if rng.random() < 0.5 or len(word) <= size else rng.randrange(0, len(word) - size + 1)
            q = word[start:start + size]
            if len(q.strip()) >= 3:
                out.append(("name", q))
        elif kind == "email":
            local, _, domain = row["email"].partition("@")
            part = local if rng.random() < 0.7 or not domain else domain
            size = rng.randint(3, 8)
            start = rng.randrange(0, max(1, len(part) - size + 1))
            q = part[start:start + size]
            if len(q.strip()) >= 3:
                out.append(("email", q))
        else:
            national = row["phone_e164"][2:]
            size = rng.randint(3, 7)
            start = rng.choice((0, 0, 3, rng.randrange(0, len(national) - size + 1)))
            digits = national[start:start + size]
            if start == 0 and size >= 6:
                q = rng.choice((f"({digits[:3]}) {digits[3:]}", f"{digits[:3]}-{digits[3:]}", f"+1{digits}", digits))
            else:
                q = digits
            out.append(("phone", q))
    return out


# ---- the command ---------------------------------------------------------------------------

async def _wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"leadsms web did not answer at {url}")


def _cpu_s(pids: Iterable[int]) -> dict[int, float]:
    """user+system CPU seconds of each live process (Linux /proc), for CPU per request:
    a figure the other load on a shared machine inflates far less than wall time."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


async def _db_backends(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("""SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                                   AND backend_type = 'client backend' AND pid <> pg_backend_pid()""")
    finally:
        await conn.close()
    return [r["pid"] for r in rows]


async def _measured(dsn: str, web_pid: int | None, run) -> dict[str, Any]:
    """`await run()` with, when the web's pid is known, its CPU and its database
    backends' CPU per request (the backends must run on this machine)."""
    before = _cpu_s([web_pid, *await _db_backends(dsn)]) if web_pid else {}
    result = await run()
    if web_pid:
        after = _cpu_s([web_pid, *await _db_backends(dsn)])
        requests = result["count"] + result.get("warmup", 0)
        web = after.get(web_pid, 0.0) - before.get(web_pid, 0.0)
        db = sum(v - before.get(pid, 0.0) for pid, v in after.items() if pid != web_pid)
        result["cpu_ms_per_request"] = {"web": round(web * 1000 / requests, 2), "db": round(db * 1000 / requests, 2)}
    return result


async def _prepare_firm(dsn: str, leads: int, seed: int) -> tuple[int, str]:
    from devtools.bench.generate_leads import generate_leads
    from firms.service import ALWAYS_OPEN, add_firm

    number = f"+1646555{random.Random().randint(1000, 9999)}"
    firm = await add_firm(dsn, f"Picker bench {leads}", number, quiet_hours=ALWAYS_OPEN)
    conn = await asyncpg.connect(dsn)
    try:
        summary = await generate_leads(conn, firm["firm_id"], leads, seed=seed)
        await conn.execute("VACUUM ANALYZE leads")  # as autovacuum would: flush GIN pending lists
    finally:
        await conn.close()
    print(json.dumps({"generated": summary}), file=sys.stderr)
    return firm["firm_id"], firm["api_key"]


def main(argv: list[str] | None = None) -> int:
    from shared.config import Settings

    parser = argparse.ArgumentParser(prog="python -m devtools.bench.picker_load", description="Picker latency through HTTP.")
    parser.add_argument("--url", help="a running leadsms web (else one is started on --port)")
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--key", help="the firm's API key (with --url)")
    parser.add_argument("--firm", type=int, help="the firm's id (to sample queries from)")
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads to generate for a new firm")
    parser.add_argument("--queries", type=int, default=400, help="queries per mix")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--web-pid", type=int, help="pid of the --url web, to report CPU per request")
    args = parser.parse_args(argv)
    settings = Settings.for_command("import")

    async def run() -> dict[str, Any]:
        if args.firm and args.key:
            firm_id, key = args.firm, args.key
        else:
            firm_id, key = await _prepare_firm(settings.database_url, args.leads, args.seed)
        web_proc = None
        url = args.url
        if not url:
            settings.require("redis_url")
            url = f"http://127.0.0.1:{args.port}"
            env = {**os.environ, "PORT": str(args.port), "LOG_LEVEL": "WARNING",
                   "TWILIO_ACCOUNT_SID": os.environ.get("TWILIO_ACCOUNT_SID", "ACbench"),
                   "TWILIO_AUTH_TOKEN": os.environ.get("TWILIO_AUTH_TOKEN", "bench")}
            web_proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "shared.cli", "web", "--host", "127.0.0.1", "--port", str(args.port),
                env=env, cwd=str(Path(__file__).resolve().parent.parent))
        try:
            await _wait_healthy(url)
            conn = await asyncpg.connect(settings.database_url)
            try:
                total = await conn.fetchval("SELECT count(*) FROM leads WHERE firm_id = $1", firm_id)
                three = await sample_queries(conn, firm_id, args.queries, seed=args.seed)
                two = await sample_queries(conn, firm_id, args.queries, seed=args.seed + 1, chars="2")
            finally:
                await conn.close()
            web_pid = web_proc.pid if web_proc is not None else args.web_pid

            def mix(queries: list[tuple[str, str]]):
                return lambda: bench_picker(url, key, queries, concurrency=args.concurrency)

            return {
                "firm_id": firm_id, "firm_leads": total, "concurrency": args.concurrency,
                "load_average": os.getloadavg(), "mix_3plus": MIX_3PLUS,
                # q of 1 character: auth and HTTP only, no search (the floor under the figures)
                "floor_no_search": await _measured(settings.database_url, web_pid, mix([("floor", "a")] * 200)),
                "three_plus_chars": await _measured(settings.database_url, web_pid, mix(three)),
                "two_chars": await _measured(settings.database_url, web_pid, mix(two)),
                "load_average_after": os.getloadavg(),
            }
        finally:
            if web_proc is not None:
                web_proc.terminate()
                await web_proc.wait()

    print(json.dumps(asyncio.run(run()), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
