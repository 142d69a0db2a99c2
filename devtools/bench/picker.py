"""The `picker` scenario: `GET /v1/leads/sendable?q=` on a firm with 1,000,000 leads.

The leads come from `devtools.bench.generate_leads` (COPY, realistic repeats and a few
unsendable phones). Generating a million takes a minute or two, so the database is kept
between runs: `leadsms_bench_picker` (or `leadsms_bench_picker_<count>` for another
count of 100,000 or more) is reused when its firm has exactly that many leads; migrations
are applied to it each run (idempotent). Smaller counts use a throwaway database.

The query mix and the timing are the portal's own (`devtools.bench.picker_load.sample_queries` and
`bench_picker`): drawn with a fixed seed from the firm's data, 3+ characters are 40% name
fragments, 30% email fragments and 30% phone digits in typed formats; 2-character
fragments are reported apart. One query at a time through one web process: the latency
a person typing sees.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import asyncpg

from devtools.bench import cluster as cl
from devtools.bench.accounting import Meter, per_unit
from devtools.bench.system import Options
from shared.config import Settings
from shared.errors import AppError
from firms.auth import hash_api_key, new_api_key
from firms.service import ALWAYS_OPEN

CACHE_FROM = 100_000
FIRM_NUMBER = "+14155550199"


def picker_db_name(count: int) -> str | None:
    if count < CACHE_FROM:
        return None
    return "leadsms_bench_picker" if count == 1_000_000 else f"leadsms_bench_picker_{count}"


async def prepare_database(services: cl.Services, count: int) -> tuple[str, str, int, bool, float]:
    """(name, dsn, firm id, reused?, seconds spent generating) for a firm with `count` leads."""
    from devtools.bench.generate_leads import generate_leads
    from shared.db import migrate

    name = picker_db_name(count)
    if name is not None and await cl.database_exists(services.admin_dsn, name):
        dsn = cl.with_database(services.admin_dsn, name)
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
        await cl.drop_database(services.admin_dsn, name)
    name, dsn = await cl.create_database(services.admin_dsn, name)
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
        await cl.drop_database(services.admin_dsn, name)
        raise
    return name, dsn, firm_id, False, time.monotonic() - started


async def run_picker(settings: Settings, services: cl.Services, opts: Options, log_dir: Path) -> dict[str, Any]:
    """Through one `leadsms web` on the picker database, one query at a time, with the
    portal's own query sampler and timer (`devtools.bench.picker_load`)."""
    from devtools.bench.picker_load import MIX_3PLUS, bench_picker, sample_queries

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
        except SystemExit as exc:  # devtools.bench.picker_load's way of saying the sample came back empty
            raise AppError(f"picker: {exc} (use --picker-leads 20000 or more)", code="bench_picker_sample") from None
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
            await cl.drop_database(services.admin_dsn, name)
    return {
        "scenario": "picker", "leads": opts.picker_leads, "database": name, "reused_database": reused,
        "generate_s": round(gen_s, 1), "mix_3plus": MIX_3PLUS,
        "queries_3plus": _summary(long),
        "by_kind": {kind: _summary(s) for kind, s in long.get("by_kind", {}).items()},
        "queries_2char": _summary(short),
        "empty_answers_3plus": long.get("empty_answers"),
        "errors": long.get("error_count", 0) + short.get("error_count", 0),
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
        "cpu_ms_per_query": {k: round(v * 1000, 3)
                             for k, v in per_unit(spent, max(1, long.get("count", 0))).items()},
    }


def _summary(s: dict[str, Any]) -> dict[str, Any]:
    """devtools.bench.picker_load's summary in this package's latency shape."""
    return {"n": s.get("count", 0), "p50_ms": s.get("p50_ms"), "p95_ms": s.get("p95_ms"),
            "p99_ms": s.get("p99_ms"), "max_ms": s.get("max_ms")}
