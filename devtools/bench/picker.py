"""The `picker` scenario: `GET /v1/leads/sendable?q=` on a firm with 1,000,000 leads.

The leads come from `devtools.bench.generate_leads` (COPY, realistic repeats and a few
unsendable phones). Generating a million takes a minute or two, so the database is kept
between runs: `leadsms_bench_picker` (or `leadsms_bench_picker_<count>` for another
count of 100,000 or more) is reused when its firm has exactly that many leads; migrations
are applied to it each run (idempotent). Smaller counts use a throwaway database.

Queries (`sample_queries`) are drawn with a fixed seed from the firm's own data, so they
match something: 3+ characters are 40% name fragments, 30% email fragments and 30% phone
digits in typed formats; 2-character fragments, which take the bounded (non-trigram)
path, are reported apart. `bench_picker` sends them one at a time through one web
process with the load generator's closed loop: the latency a person typing sees.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

import asyncpg

from devtools.bench import cluster as cl
from devtools.bench import load
from devtools.bench.accounting import Meter, per_unit
from devtools.bench.generate_leads import generate_leads
from devtools.bench.system import Options
from devtools.local_services import create_database, database_exists, drop_database, with_database
from firms.auth import hash_api_key, new_api_key
from shared.config import Settings
from shared.db import migrate
from shared.errors import AppError
from firms.service import ALWAYS_OPEN

MIX_3PLUS = {"name": 0.4, "email": 0.3, "phone": 0.3}
CACHE_FROM = 100_000
FIRM_NUMBER = "+14155550199"


def picker_db_name(count: int) -> str | None:
    if count < CACHE_FROM:
        return None
    return "leadsms_bench_picker" if count == 1_000_000 else f"leadsms_bench_picker_{count}"


async def prepare_database(services: cl.Services, count: int) -> tuple[str, str, int, bool, float]:
    """(name, dsn, firm id, reused?, seconds spent generating) for a firm with `count` leads."""
    name = picker_db_name(count)
    if name is not None and await database_exists(services.admin_dsn, name):
        dsn = with_database(services.admin_dsn, name)
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            firm_id = await conn.fetchval("SELECT id FROM firms WHERE sms_number = $1", FIRM_NUMBER)
            have = await conn.fetchval("SELECT count(*) FROM leads WHERE firm_id = $1", firm_id) if firm_id else 0
        finally:
            await conn.close()
        if firm_id and have == count:
            conn = await asyncpg.connect(dsn)
            try:  # cheap when nothing changed; flushes GIN pending lists when something did
                await conn.execute("VACUUM ANALYZE leads")
            finally:
                await conn.close()
            return name, dsn, firm_id, True, 0.0
        await drop_database(services.admin_dsn, name)
    name, dsn = await create_database(services.admin_dsn, prefix="leadsms_bench_", name=name)
    started = time.monotonic()
    try:
        await migrate(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            firm_id = await conn.fetchval(
                "INSERT INTO firms (name, sms_number, api_key_sha256, quiet_hours)"
                " VALUES ('Picker Bench', $1, $2, $3) RETURNING id",
                FIRM_NUMBER, hash_api_key(new_api_key()), ALWAYS_OPEN)
            await generate_leads(conn, firm_id, count, seed=7)
            await conn.execute("VACUUM ANALYZE leads")  # as autovacuum would: flush GIN pending lists
        finally:
            await conn.close()
    except BaseException:  # a half-generated database would only be regenerated next time
        await drop_database(services.admin_dsn, name)
        raise
    return name, dsn, firm_id, False, time.monotonic() - started


async def run_picker(settings: Settings, services: cl.Services, opts: Options, log_dir: Path) -> dict[str, Any]:
    """Through one `leadsms web` on the picker database, one query at a time."""
    name, dsn, firm_id, reused, gen_s = await prepare_database(services, opts.picker_leads)
    throwaway = picker_db_name(opts.picker_leads) is None
    cluster = cl.Cluster(settings, dsn, services.redis_url, log_dir, log_level=opts.log_level,
                         env_overrides=dict(opts.env))
    try:
        key = new_api_key()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("UPDATE firms SET api_key_sha256 = $1 WHERE id = $2", hash_api_key(key), firm_id)
            three = await sample_queries(conn, firm_id, opts.picker_queries, seed=7)
            two = await sample_queries(conn, firm_id, max(10, opts.picker_queries // 4), seed=8, chars="2")
        finally:
            await conn.close()
        await cluster.start(sim=False, worker=False)
        meter = Meter(cluster.groups("web"), backend_pids=cl.backend_pids_of(dsn))
        await bench_picker(cluster.web_url, key, three[:30], warmup=30)  # connections, caches
        await meter.begin()
        long = await bench_picker(cluster.web_url, key, three, warmup=0)
        spent = await meter.end()
        short = await bench_picker(cluster.web_url, key, two, warmup=0)
    finally:
        await cluster.stop_all()
        if throwaway:
            await drop_database(services.admin_dsn, name)
    return {
        "scenario": "picker", "leads": opts.picker_leads, "database": name, "reused_database": reused,
        "generate_s": round(gen_s, 1), "mix_3plus": MIX_3PLUS,
        "queries_3plus": long["all"], "by_kind": long["by_kind"], "queries_2char": short["all"],
        "empty_answers_3plus": long["empty_answers"], "errors": long["error_count"] + short["error_count"],
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
        "cpu_ms_per_query": {k: round(v * 1000, 3)
                             for k, v in per_unit(spent, max(1, long["all"]["n"])).items()},
    }


async def bench_picker(base_url: str, api_key: str, queries: Iterable[tuple[str, str]], *,
                       warmup: int = 30) -> dict[str, Any]:
    """Time `GET /v1/leads/sendable?q=` for each (kind, q), one at a time (the latency one
    staff member sees, not throughput); latency summaries overall and by kind. The first
    `warmup` queries are run first and not counted (connections, prepared statements, caches).
    """
    queries = list(queries)
    headers = {"Authorization": f"Bearer {api_key}"}

    def requests(items: list[tuple[str, str]]) -> list[load.Request]:
        return [load.Request("GET", f"{base_url}/v1/leads/sendable?q={quote(q)}", headers=headers, tag=kind)
                for kind, q in items]

    async with load.session(limit=1) as s:
        await load.closed_loop(s, requests(queries[:warmup]), 1, want_json=False)
        outcomes = await load.closed_loop(s, requests(queries), 1)
    ok = [o for o in outcomes if o.status == 200 and isinstance(o.body, dict)]
    errors = [f"{o.status or o.error} for {o.request.url}" for o in outcomes if o not in ok]
    return {
        "all": load.latency_summary([o.elapsed for o in ok]),
        "by_kind": {kind: load.latency_summary([o.elapsed for o in ok if o.request.tag == kind])
                    for kind in sorted({o.request.tag for o in ok})},
        "empty_answers": sum(1 for o in ok if not o.body.get("items")),
        "errors": errors[:10], "error_count": len(errors),
    }


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
        raise AppError(f"picker: firm {firm_id} has no leads to sample queries from "
                       "(use --picker-leads 20000 or more)", code="bench_picker_sample")
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
