"""The `intake` scenario: CRM leads in, until each phone's line type is known.

Every lead has its own new phone (a mobile in the simulator), so each one goes the whole
way: `POST /v1/leads` → `validate_lead` job → `lookup_line_type` job → Twilio Lookup (the
simulator) → `phone_lines`. "Line type known" is the moment that row was written (its
`checked_at`, PostgreSQL's clock on the same machine as ours).

- steady: `intake_rate` leads/s for `intake_duration` s (open loop, one firm), measured by
  `bench_intake` (below; a test runs it too): p50/p95/p99 POST → line type known;
- bulk: `intake_bulk` leads POSTed as fast as the web takes them (every firm): leads/s
  accepted, and leads/s through to a known line type;
- import: `leadsms import` of an `import_rows`-row CSV (`write_leads_csv`): leads/s
  (validated inline, line types left to the lazy lookup).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import random
import time
from typing import Any

import aiohttp
import asyncpg

from devtools.bench import load, profile
from devtools.bench.accounting import per_unit
from devtools.bench.seed import phones
from devtools.bench.system import System, wait_for_count
from shared.phones import check_phone


def lead_requests(system: System, count: int, start: int, tag: str) -> list[load.Request]:
    firms = system.firms
    out = []
    # 332: an area code bench_intake's steady phase does not draw from
    for i, phone in enumerate(phones("332", 5_000_000 + start, count)):
        firm = firms[i % len(firms)]
        national = phone[2:]
        body = {"external_id": f"{tag}-{i}", "name": f"Bench Lead {tag} {i}", "email": f"{tag}.{i}@example.com",
                "phone": f"({national[:3]}) {national[3:6]}-{national[6:]}", "event": "Bench Seminar"}
        out.append(load.Request("POST", f"{system.web_url}/v1/leads", json.dumps(body).encode(),
                                {"Authorization": firm.auth, "Content-Type": "application/json"},
                                tag=(firm.id, body["external_id"])))
    return out


async def _known(system: System, tag: str) -> int:
    rows = await system.sql(
        """SELECT count(*) AS n FROM leads l JOIN phone_lines p ON p.phone_e164 = l.phone_e164
           WHERE l.external_id LIKE $1""", f"{tag}-%")
    return int(rows[0]["n"])


async def _known_at(system: System, tag: str) -> dict[tuple[int, str], float]:
    rows = await system.sql(
        """SELECT l.firm_id, l.external_id, extract(epoch FROM p.checked_at)::float8 AS at
           FROM leads l JOIN phone_lines p ON p.phone_e164 = l.phone_e164
           WHERE l.external_id LIKE $1""", f"{tag}-%")
    return {(r["firm_id"], r["external_id"]): r["at"] for r in rows}


async def _phase(system: System, requests: list[load.Request], tag: str, *, rate: float | None) -> dict[str, Any]:
    opts = system.opts
    meter = system.meter("web", "worker", "twilio-sim")
    assert system.cluster is not None
    profiler = profile.start(opts.profile, system.cluster.groups("web", "worker"), f"intake-{tag}-")
    await meter.begin()
    t0 = time.time()
    async with load.session() as s:
        if rate is None:
            outcomes = await load.closed_loop(s, requests, opts.concurrency, want_json=False)
        else:
            outcomes = await load.open_loop(s, requests, rate, want_json=False)
    t_posted = time.time()
    accepted = [o for o in outcomes if o.status == 202]
    known, complete = await wait_for_count(lambda: _known(system, tag), len(accepted), stall_s=20,
                                           timeout=opts.drain_timeout, interval=0.1)
    spent = await meter.end()
    profiled = profile.stop(profiler) if profiler else None
    at = await _known_at(system, tag)
    latencies = [at[o.request.tag] - o.started for o in accepted if o.request.tag in at]
    t_last = max(at.values()) if at else t_posted
    return {
        "offered": len(requests), "accepted": len(accepted), "statuses": load.status_counts(outcomes),
        "line_type_known": known, "complete": complete,
        "accepted_per_s": round(len(accepted) / max(1e-9, t_posted - t0), 1),
        "known_per_s": round(known / max(1e-9, t_last - t0), 1),
        "post_to_line_type": load.latency_summary(latencies),
        "post_round_trip": load.latency_summary([o.elapsed for o in accepted]),
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
        "cpu_ms_per_lead": {k: round(v * 1000, 3) for k, v in per_unit(spent, max(1, known)).items()},
        **({"profile": profiled} if profiled else {}),
    }


async def _steady(system: System) -> dict[str, Any]:
    """bench_intake's steady-rate measurement (open loop, phone_lines.checked_at)."""
    opts = system.opts
    meter = system.meter("web", "worker", "twilio-sim")
    count = max(1, int(opts.intake_rate * opts.intake_duration))
    await meter.begin()
    r = await bench_intake(system.web_url, system.firms[0].api_key, opts.intake_rate, count, dsn=system.dsn,
                           timeout_s=opts.drain_timeout, seed=1)
    spent = await meter.end()
    known = r["line_type_known"]
    ms = lambda v: None if v is None else round(v * 1000, 1)  # noqa: E731
    lat, post = r["post_to_line_type_s"], r["post_s"]
    return {
        "offered": count, "accepted": r["statuses"].get(202, r["statuses"].get("202", 0)),
        "statuses": {str(k): v for k, v in r["statuses"].items()}, "line_type_known": known,
        "complete": known == count, "accepted_per_s": r["achieved_rate"], "known_per_s": r["achieved_rate"],
        "post_to_line_type": {"n": known, "p50_ms": ms(lat["p50"]), "p95_ms": ms(lat["p95"]),
                              "p99_ms": ms(lat["p99"]), "max_ms": ms(lat["max"])},
        "post_round_trip": {"n": count, "p50_ms": ms(post["p50"]), "p95_ms": ms(post["p95"])},
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
        "cpu_ms_per_lead": {k: round(v * 1000, 3) for k, v in per_unit(spent, max(1, known)).items()},
        "measured_by": r["measured_by"],
    }


async def _import(system: System) -> dict[str, Any]:
    """`leadsms import` of a generated CSV (write_leads_csv): leads/s of the bulk path that
    validates inline and leaves line types to the lazy lookup."""
    opts = system.opts
    assert system.cluster is not None
    path = write_leads_csv(str(system.log_dir / "import.csv"), opts.import_rows)
    firm = system.firms[-1]
    proc = system.cluster.spawn("import", system.cluster.cli("import", path, "--firm", str(firm.id), "--no-progress"))
    meter = system.meter()
    meter.children = True  # the import's own CPU: it is reaped by the time we look
    await meter.begin()
    t0 = time.time()
    while proc.popen.poll() is None:
        await meter.sample()
        await asyncio.sleep(0.1)
    elapsed = time.time() - t0
    spent = await meter.end()
    spent["import"] = spent.pop("reaped", 0.0)
    system.cluster.procs.pop("import", None)
    summary: dict[str, Any] = {}
    for line in reversed(proc.log_path.read_text(errors="replace").splitlines()):
        if line.startswith("{") and '"inserted"' in line:
            summary = json.loads(line)
            break
    inserted = int(summary.get("inserted", 0))
    seconds = float(summary.get("seconds") or elapsed)  # the importer's own clock: no interpreter start
    return {
        "rows": opts.import_rows, "exit_code": proc.popen.returncode, "inserted": inserted,
        "invalid": summary.get("invalid"), "seconds": round(seconds, 2), "process_seconds": round(elapsed, 2),
        "leads_per_s": round(inserted / seconds, 1) if seconds else None,
        "cpu_s": {k: round(v, 2) for k, v in spent.items()},
        "cpu_ms_per_lead": {k: round(v * 1000, 3) for k, v in per_unit(spent, max(1, inserted)).items()},
    }


async def run_intake(system: System) -> dict[str, Any]:
    opts = system.opts
    await system.fresh_phase()
    async with load.session() as s:  # warm-up
        await load.closed_loop(s, lead_requests(system, 20, 900_000, "warm"), 4, want_json=False)
    await wait_for_count(lambda: _known(system, "warm"), 20, stall_s=20, timeout=60)
    steady = await _steady(system)
    bulk = await _phase(system, lead_requests(system, opts.intake_bulk, 200_000, "bulk"), "bulk", rate=None)
    result = {"scenario": "intake", "rate": opts.intake_rate, "duration_s": opts.intake_duration,
              "bulk_n": opts.intake_bulk, "concurrency": opts.concurrency, "steady": steady, "bulk": bulk}
    if opts.import_rows:
        result["import"] = await _import(system)
    return result


# ---- the steady-rate timer and the import's CSV -----------------------------------------------


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


def _seconds(values: list[float], *points: float) -> dict[str, float | None]:
    ordered = sorted(values)

    def at(p: float) -> float | None:
        value = load.percentile(ordered, p)
        return None if value is None else round(value, 4)

    return {("max" if p == 100 else f"p{p:g}"): at(p) for p in points}


async def bench_intake(base_url: str, api_key: str, rate: float, count: int, *, dsn: str | None = None,
                       timeout_s: float = 120.0, seed: int | None = None) -> dict[str, Any]:
    """Post `count` signups at a steady `rate` per second (the load generator's open loop),
    each with a phone of its own that the simulator answers `mobile`, and report seconds
    from the POST to its line type being known, as p50/p95/p99/max.

    With `dsn` (a database on this machine's clock) the moment a line type became known is
    `phone_lines.checked_at`, read once every 0.1 s for all leads: exact, and it adds no
    load. Without it, the leads still open are polled over HTTP, eight requests at a time,
    each lead at most every 50 ms: the figures then include that polling's lag and load.
    """
    rng = random.Random(seed)
    run = f"bench-{int(time.time())}-{rng.randrange(10**6)}"
    phones = _phones(count, rng)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    requests = [load.Request("POST", f"{base_url}/v1/leads", json.dumps(
        {"external_id": f"{run}-{i}", "name": f"Bench {i}", "email": f"bench{i}@example.com",
         "event": "Benchmark", "phone": phones[i]}).encode(), headers) for i in range(count)]
    posted: dict[int, float] = {}  # lead id -> wall-clock time its POST started
    known: dict[int, float] = {}  # lead id -> wall-clock time its line type was known

    def accepted(outcome: load.Outcome) -> None:
        if outcome.status == 202 and isinstance(outcome.body, dict):
            posted[outcome.body["lead_id"]] = outcome.started

    async def watch_db(stop: asyncio.Event) -> None:
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

    async with load.session(limit=200) as session:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_db(stop) if dsn else watch_http(session, stop))
        t0 = time.monotonic()
        outcomes = await load.open_loop(session, requests, rate, on_done=accepted)
        offered_s = time.monotonic() - t0
        stop.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(watcher, timeout_s)
    statuses: dict[int | None, int] = {}
    for o in outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    latencies = [known[i] - posted[i] for i in posted if i in known]
    return {
        "rate": rate, "count": count, "achieved_rate": round(count / offered_s, 1), "statuses": statuses,
        "line_type_known": len(latencies), "measured_by": "phone_lines.checked_at" if dsn else "http polling",
        "post_to_line_type_s": _seconds(latencies, 50, 95, 99, 100),
        "post_s": _seconds([o.elapsed for o in outcomes], 50, 95),
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
